#pragma once
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// Heun's second-order method with optional churn (Karras et al. 2022, Algorithm 2):
// γ_i = min(S_churn/N, √2 - 1) for S_tmin ≤ σ_i ≤ S_tmax (else 0), σ̂ = σ_i(1 + γ_i),
// x̂ = x + √(σ̂² - σ_i²) S_noise ε, an Euler step from σ̂ to σ_{i+1}, then the trapezoidal
// correction except into σ = 0. Draws noise only on churned steps.
torch::Tensor sample_heun(const Denoiser& denoiser, torch::Tensor x,
                          const std::vector<double>& sigmas, SeededNoise& noise,
                          const SamplerOptions& options, const SamplerCallback& progress = {});

// Network evaluations for `steps` steps: 2 per step, 1 for a last step into σ = 0.
int64_t heun_nfe(int64_t steps, bool ends_at_zero = true);

}  // namespace diffuse
