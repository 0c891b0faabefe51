#include "diffuse/losses/vlb_loss.h"

#include <cmath>
#include <string>

#include "diffuse/core/error.h"
#include "diffuse/schedule/vp_posterior.h"

namespace diffuse {
namespace {

// Half the width of one of the 256 quantisation bins of data scaled to [-1, 1].
constexpr double kHalfBin = 1.0 / 255.0;
// Floor on probabilities before the log, as in the reference implementation.
constexpr double kMinProbability = 1e-12;

torch::ScalarType compute_dtype(const torch::Tensor& x) {
  return x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

torch::Tensor mean_over_non_batch_dims(const torch::Tensor& x) {
  return x.reshape({x.size(0), -1}).mean(1);  // [B]
}

// KL(N(μ1, e^{lv1}) ‖ N(μ2, e^{lv2})) per element.
torch::Tensor gaussian_kl(const torch::Tensor& mean1, const torch::Tensor& log_var1,
                          const torch::Tensor& mean2, const torch::Tensor& log_var2) {
  return 0.5 * (-1.0 + log_var2 - log_var1 + torch::exp(log_var1 - log_var2) +
                (mean1 - mean2).square() * torch::exp(-log_var2));
}

// log P(x0 in its bin) under N(mean, e^{2 log_std}) with the edge bins open to ±∞ (Ho et al.
// 2020 eq. 13); the normal CDF through erfc keeps both tails accurate.
torch::Tensor discretized_gaussian_log_likelihood(const torch::Tensor& x0, const torch::Tensor& mean,
                                                  const torch::Tensor& log_std) {
  const double inv_sqrt2 = 1.0 / std::sqrt(2.0);
  auto inv_std = torch::exp(-log_std);
  auto upper = inv_std * (x0 - mean + kHalfBin);  // standardised upper bin edge
  auto lower = inv_std * (x0 - mean - kHalfBin);  // standardised lower bin edge
  auto cdf_upper = 0.5 * torch::erfc(-upper * inv_sqrt2);           // Φ(upper)
  auto survival_lower = 0.5 * torch::erfc(lower * inv_sqrt2);      // 1 - Φ(lower)
  auto cdf_lower = 0.5 * torch::erfc(-lower * inv_sqrt2);           // Φ(lower)
  auto log_cdf_upper = torch::log(cdf_upper.clamp_min(kMinProbability));
  auto log_survival_lower = torch::log(survival_lower.clamp_min(kMinProbability));
  auto log_bin = torch::log((cdf_upper - cdf_lower).clamp_min(kMinProbability));
  return torch::where(x0 < -0.999, log_cdf_upper,
                      torch::where(x0 > 0.999, log_survival_lower, log_bin));
}

}  // namespace

torch::Tensor vlb_loss(const std::vector<double>& betas, const std::vector<double>& alphas_cumprod,
                       const torch::Tensor& t, const torch::Tensor& x_t, const torch::Tensor& x0,
                       const torch::Tensor& x0_pred, const torch::Tensor& var_interp) {
  check_timesteps(t, x_t, "vlb_loss");
  if (!x0.sizes().equals(x_t.sizes()) || !x0_pred.sizes().equals(x_t.sizes()) ||
      !var_interp.sizes().equals(x_t.sizes()))
    throw DataError("vlb_loss: x_t, x0, x0_pred and var_interp must have the same shape");
  const VpPosteriorTables tables = vp_posterior_tables(betas, alphas_cumprod);
  const auto dtype = compute_dtype(x_t);
  auto xt = x_t.to(dtype), x0_true = x0.to(dtype);
  auto x0_model = x0_pred.detach().to(dtype);  // stop-gradient: L_vlb trains only the variance
  auto mean_x0_coef = per_timestep(tables.mean_x0_coef, t, xt);  // [B, 1, …]
  auto mean_xt_coef = per_timestep(tables.mean_xt_coef, t, xt);  // [B, 1, …]

  // q(x_{t-1} | x_t, x0) = N(μ̃_t, β̃_t) and p_θ(x_{t-1} | x_t) = N(μ̃_t(x_t, x0_pred), Σ_θ).
  auto true_mean = mean_x0_coef * x0_true + mean_xt_coef * xt;               // [B, …]
  auto true_log_var = per_timestep(tables.log_variance_clipped, t, xt);        // [B, 1, …]
  auto model_mean = mean_x0_coef * x0_model + mean_xt_coef * xt;             // [B, …]
  auto model_log_var = interpolated_log_variance(tables, t, var_interp.to(dtype));  // [B, …]

  auto kl = gaussian_kl(true_mean, true_log_var, model_mean, model_log_var);  // [B, …]
  auto decoder_log_likelihood =
      discretized_gaussian_log_likelihood(x0_true, model_mean, 0.5 * model_log_var);  // [B, …]
  return torch::where(t.to(kl.device()) == 0,
                      -mean_over_non_batch_dims(decoder_log_likelihood),
                      mean_over_non_batch_dims(kl));  // [B]
}

}  // namespace diffuse
