#pragma once
// The variational-bound term L_vlb of the hybrid loss L_simple + λ L_vlb (Nichol & Dhariwal
// 2021, "Improved DDPM", eq. 16) on a discrete VP grid, given as in schedule/vp_posterior.h.
#include <torch/torch.h>

#include <vector>

#include "diffuse/schedule/vp_posterior.h"

namespace diffuse {

// Per-sample L_vlb in nats per dimension (mean over all dims but the first), [B]:
//   t > 0:  KL( q(x_{t-1} | x_t, x0) ‖ p_θ(x_{t-1} | x_t) )                      (eq. 5)
//   t = 0:  -log p_θ(x0 | x_1), the discretised Gaussian decoder with bins of width
//           2/255 over data in [-1, 1], open-ended at ±1 (Ho et al. 2020 §3.3, eq. 13)
// p_θ has mean μ̃_t(x_t, x0_pred) (eq. 7) and the learned variance of eq. 15. x0_pred is
// detached: as in Improved DDPM §3.1, L_vlb trains only the variance and L_simple the mean.
// t: [B] integer; x_t, x0, x0_pred, var_interp: [B, …] of equal shape. Computed in float32
// (float64 inputs stay float64).
torch::Tensor vlb_loss(const std::vector<double>& betas, const std::vector<double>& alphas_cumprod,
                       const torch::Tensor& t, const torch::Tensor& x_t, const torch::Tensor& x0,
                       const torch::Tensor& x0_pred, const torch::Tensor& var_interp);

}  // namespace diffuse
