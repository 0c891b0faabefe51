#pragma once
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// DDIM (Song et al. 2021, eq. 12 with σ_t(η) of eq. 16) in σ-space: the ancestral step of
// sampler_common.h with η = options.eta. η = 0 is exactly Euler over the same σ list
// (DESIGN §3); η = 1 over the full training grid is DDPM. One NFE per step.
torch::Tensor sample_ddim(const Denoiser& denoiser, torch::Tensor x,
                          const std::vector<double>& sigmas, SeededNoise& noise,
                          const SamplerOptions& options, const SamplerCallback& progress = {});

}  // namespace diffuse
