#pragma once
// Learned reverse-process variance (Nichol & Dhariwal 2021, "Improved DDPM"): the
// interpolated log variance of eq. 15 and the variational-bound term L_vlb of the hybrid
// loss L_simple + λ L_vlb (eq. 16). Works on a discrete VP grid in VP space (x_t =
// √ᾱ_t x0 + √(1-ᾱ_t) ε); the grid comes in as plain host vectors so this file depends on
// no schedule code: betas[t] = β_t, alphas_cumprod[t] = ᾱ_t = Π_{s<=t} (1 - β_s), t = 0…T-1
// (0-indexed: t = 0 is the first noising step, DDPM's t = 1).
#include <torch/torch.h>

#include <vector>

namespace diffuse {

// log Σ_θ(x_t, t) = frac·log β_t + (1-frac)·log β̃_t with frac = (v+1)/2 (eq. 15), where v is
// the model's variance output in [-1, 1] and β̃_t = β_t (1-ᾱ_{t-1}) / (1-ᾱ_t) the posterior
// variance (eq. 7). β̃_0 = 0, so at t = 0 the lower end uses β̃_1 instead, as the reference
// implementation does ("posterior_log_variance_clipped").
// t: [B] integer in [0, T); var_interp: [B, …] → [B, …] (same shape and dtype as var_interp).
// A DDPM sampler with learned variance draws x_{t-1} = μ + exp(½·this)·z.
torch::Tensor learned_posterior_log_variance(const std::vector<double>& betas,
                                             const std::vector<double>& alphas_cumprod,
                                             const torch::Tensor& t, const torch::Tensor& var_interp);

// Per-sample L_vlb in nats per dimension (mean over all dims but the first), [B]:
//   t > 0:  KL( q(x_{t-1} | x_t, x0) ‖ p_θ(x_{t-1} | x_t) )                      (eq. 5)
//   t = 0:  -log p_θ(x0 | x_1), the discretised Gaussian decoder with bins of width
//           2/255 over data in [-1, 1], open-ended at ±1 (Ho et al. 2020 §3.3, eq. 13)
// p_θ has mean μ̃_t(x_t, x0_pred) (eq. 7) and the learned variance above. x0_pred is
// detached: as in Improved DDPM §3.1, L_vlb trains only the variance and L_simple the mean.
// t: [B] integer; x_t, x0, x0_pred, var_interp: [B, …] of equal shape. Computed in float32
// (float64 inputs stay float64).
torch::Tensor vlb_loss(const std::vector<double>& betas, const std::vector<double>& alphas_cumprod,
                       const torch::Tensor& t, const torch::Tensor& x_t, const torch::Tensor& x0,
                       const torch::Tensor& x0_pred, const torch::Tensor& var_interp);

}  // namespace diffuse
