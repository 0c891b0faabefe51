#pragma once
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// Euler–Maruyama on the reverse-time SDE dx = [f(x,t) - g(t)² ∇log p_t(x)] dt + g(t) dw̄
// (Song et al. 2021, eq. 6), with the score ∇log p_σ(x) = (D(x; σ) - x)/σ². One NFE per
// step; the step into σ = 0 lands on D (the noise-free last step of their samplers).
//
// VE form (f = 0, g² = dσ²/dt; their eq. 30, discretised as eq. 47): from σ to σ',
//   x' = x + (σ² - σ'²) ∇log p_σ(x) + √(σ² - σ'²) z.
torch::Tensor sample_sde_ve(const Denoiser& denoiser, torch::Tensor x,
                            const std::vector<double>& sigmas, SeededNoise& noise,
                            const SamplerOptions& options, const SamplerCallback& progress = {});

// VP form (f = -½β x, g = √β; their eq. 32), stepped in the VP state x_t = √ᾱ x̃ with
// ᾱ = 1/(1+σ²) and β = 1 - ᾱ(σ)/ᾱ(σ') (on a VP training grid exactly the grid's β_t):
//   x_t' = (1 + β/2) x_t + β ∇_{x_t} log p(x_t) + √β z,   x̃' = x_t'/√ᾱ(σ'),
// where ∇_{x_t} log p = (√ᾱ D - x_t)/(1 - ᾱ). In σ-space both forms discretise the same SDE
// (the VP SDE of x_t is the VE SDE of x̃ = x_t/√ᾱ); they differ at finite step sizes.
torch::Tensor sample_sde_vp(const Denoiser& denoiser, torch::Tensor x,
                            const std::vector<double>& sigmas, SeededNoise& noise,
                            const SamplerOptions& options, const SamplerCallback& progress = {});

}  // namespace diffuse
