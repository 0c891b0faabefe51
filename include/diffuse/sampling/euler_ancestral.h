#pragma once
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// Euler ancestral (k-diffusion's sample_euler_ancestral): the ancestral step with
// η = options.eta and the fresh noise scaled by options.s_noise. Mathematically the DDIM(η)
// step, offered under k-diffusion's name for Karras grids; η = 1 is the usual choice
// (η = 0 reduces it to Euler). One NFE per step.
torch::Tensor sample_euler_ancestral(const Denoiser& denoiser, torch::Tensor x,
                                     const std::vector<double>& sigmas, SeededNoise& noise,
                                     const SamplerOptions& options,
                                     const SamplerCallback& progress = {});

}  // namespace diffuse
