#pragma once
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// Multistep consistency sampling (Song et al. 2023, Algorithm 1) over a consistency model
// f(x; σ) given as the denoiser: x̂0 = f(x; σ_0), then for each later σ_n > 0 of the list
// x = x̂0 + √(σ_n² − σ_min²) z and x̂0 = f(x; σ_n), with σ_min = options.consistency_sigma_min.
// One NFE per step: steps = 1 is a single network evaluation. Over an ordinary denoiser it
// re-noises its one-step x0 estimates, which the model was not trained to make consistent.
torch::Tensor sample_consistency(const Denoiser& denoiser, torch::Tensor x,
                                 const std::vector<double>& sigmas, SeededNoise& noise,
                                 const SamplerOptions& options, const SamplerCallback& progress = {});

}  // namespace diffuse
