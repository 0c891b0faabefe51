#pragma once
// Helpers shared by the samplers and by DPS (DESIGN §3).
#include <torch/torch.h>

#include <utility>

namespace diffuse {

// Probability-flow ODE derivative dx/dσ = (x - D(x; σ)) / σ (Karras et al. 2022 eq. 3 with
// σ(t) = t). `sigma` is a host double.
torch::Tensor to_d(const torch::Tensor& x, double sigma, const torch::Tensor& denoised);

// Splits a step σ → σ' into a deterministic part down to σ_down and fresh noise σ_up:
// σ_up = min(σ', η √(σ'²(σ² - σ'²)/σ²)), σ_down = √(σ'² - σ_up²). η = 1 is the DDPM
// ancestral step (posterior variance β̃), η = 0 the deterministic DDIM/Euler step.
struct AncestralSigmas {
  double down;
  double up;
};
AncestralSigmas ancestral_sigmas(double sigma, double sigma_next, double eta);

// A [B] tensor filled with σ, on x's device and dtype float32.
torch::Tensor sigma_batch(const torch::Tensor& x, double sigma);

}  // namespace diffuse
