#pragma once
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// DDPM ancestral sampling (Ho et al. 2020, Algorithm 2 with posterior variance β̃_t, eq. 7)
// in σ-space: the ancestral step with η = 1 (options.eta is ignored). Meant for the full
// training grid (σ_T, …, σ_1, 0), where it equals the VP-space posterior step
// x_{t-1} = μ̃_t(x_t, x̂0) + √β̃_t z after dividing by √ᾱ_{t-1}. One NFE per step. A
// denoiser that returns a reverse_log_variance (learned-variance models) sets the step noise.
torch::Tensor sample_ddpm(const Denoiser& denoiser, torch::Tensor x,
                          const std::vector<double>& sigmas, SeededNoise& noise,
                          const SamplerOptions& options, const SamplerCallback& progress = {});

}  // namespace diffuse
