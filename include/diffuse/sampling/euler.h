#pragma once
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// Euler's method on the probability-flow ODE dx/dσ = (x - D(x; σ))/σ (Karras et al. 2022
// Algorithm 1 without churn; k-diffusion's sample_euler). One NFE per step; the step into
// σ = 0 lands on D. Deterministic: `noise` is not drawn from.
torch::Tensor sample_euler(const Denoiser& denoiser, torch::Tensor x,
                           const std::vector<double>& sigmas, SeededNoise& noise,
                           const SamplerOptions& options, const SamplerCallback& progress = {});

}  // namespace diffuse
