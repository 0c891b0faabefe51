#pragma once
// The VP forward process's posterior q(x_{t-1} | x_t, x0) = N(μ̃_t, β̃_t I) (Ho et al. 2020
// eq. 6-7) and the learned reverse variance between β̃_t and β_t (Nichol & Dhariwal 2021
// eq. 15), tabulated on a discrete VP grid in VP space (x_t = √ᾱ_t x0 + √(1-ᾱ_t) ε). The grid
// comes in as plain host vectors: betas[t] = β_t, alphas_cumprod[t] = ᾱ_t = Π_{s<=t} (1 - β_s),
// t = 0…T-1 (0-indexed: t = 0 is the first noising step, DDPM's t = 1). Used by the hybrid loss
// (losses/vlb_loss.h) and by the learned-variance DDPM step (precond's reverse_log_variance).
#include <torch/torch.h>

#include <vector>

#include "diffuse/schedule/noise_schedule.h"

namespace diffuse {

// Per-timestep constants, in double precision.
struct VpPosteriorTables {
  std::vector<double> mean_x0_coef;          // β_t √ᾱ_{t-1} / (1-ᾱ_t)
  std::vector<double> mean_xt_coef;          // (1-ᾱ_{t-1}) √α_t / (1-ᾱ_t)
  std::vector<double> log_variance_clipped;  // log β̃_t, with β̃_1 standing in for β̃_0 = 0
  std::vector<double> log_beta;              // log β_t
};

// Throws ConfigError unless both lists have one value in (0, 1) per timestep.
VpPosteriorTables vp_posterior_tables(const std::vector<double>& betas, const std::vector<double>& alphas_cumprod);

// values[t_b] for each sample b, shaped [B, 1, …, 1] to broadcast against `like` (its dtype
// and device).
torch::Tensor per_timestep(const std::vector<double>& values, const torch::Tensor& t, const torch::Tensor& like);

// Throws DataError unless t is an integer tensor with one timestep per sample of `like`.
void check_timesteps(const torch::Tensor& t, const torch::Tensor& like, const char* what);

// log Σ_θ(x_t, t) = frac·log β_t + (1-frac)·log β̃_t with frac = (v+1)/2 (eq. 15), where v is
// the model's variance output in [-1, 1]. β̃_0 = 0, so at t = 0 the lower end uses β̃_1
// instead, as the reference implementation does ("posterior_log_variance_clipped").
// t: [B] integer in [0, T); var_interp: [B, …] → [B, …] (same shape and dtype as var_interp).
torch::Tensor interpolated_log_variance(const VpPosteriorTables& tables, const torch::Tensor& t,
                                        const torch::Tensor& var_interp);
torch::Tensor learned_posterior_log_variance(const std::vector<double>& betas,
                                             const std::vector<double>& alphas_cumprod,
                                             const torch::Tensor& t, const torch::Tensor& var_interp);

// The same at the grid timestep nearest t(σ) of each sample (σ: [B]), in float32: the log
// variance a DDPM step from σ draws its noise with, x_{t-1} = μ + exp(½·this)·z.
torch::Tensor vp_reverse_log_variance(const NoiseSchedule& schedule, const torch::Tensor& sigma,
                                      const torch::Tensor& var_interp);

}  // namespace diffuse
