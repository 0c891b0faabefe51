#include "diffuse/losses/vlb_loss.h"

#include <cmath>
#include <string>

#include "diffuse/core/error.h"

namespace diffuse {
namespace {

// Half the width of one of the 256 quantisation bins of data scaled to [-1, 1].
constexpr double kHalfBin = 1.0 / 255.0;
// Floor on probabilities before the log, as in the reference implementation.
constexpr double kMinProbability = 1e-12;

// Per-timestep constants of the posterior q(x_{t-1} | x_t, x0) = N(μ̃_t, β̃_t I) (DDPM eq. 6-7),
// tabulated on the host in double precision.
struct PosteriorTables {
  std::vector<double> mean_x0_coef;          // β_t √ᾱ_{t-1} / (1-ᾱ_t)
  std::vector<double> mean_xt_coef;          // (1-ᾱ_{t-1}) √α_t / (1-ᾱ_t)
  std::vector<double> log_variance_clipped;  // log β̃_t, with β̃_1 standing in for β̃_0 = 0
  std::vector<double> log_beta;              // log β_t
};

PosteriorTables posterior_tables(const std::vector<double>& betas,
                                 const std::vector<double>& alphas_cumprod) {
  if (betas.empty() || betas.size() != alphas_cumprod.size())
    throw ConfigError("vlb_loss: the VP grid needs one β_t and one ᾱ_t per timestep; got " +
                      std::to_string(betas.size()) + " betas and " +
                      std::to_string(alphas_cumprod.size()) + " alphas_cumprod");
  const size_t steps = betas.size();
  PosteriorTables tables;
  std::vector<double> posterior_variance(steps);
  for (size_t t = 0; t < steps; ++t) {
    const double beta = betas[t];
    if (!(beta > 0.0 && beta < 1.0) || !(alphas_cumprod[t] > 0.0 && alphas_cumprod[t] < 1.0))
      throw ConfigError("vlb_loss: β_t and ᾱ_t must lie in (0, 1); at t = " + std::to_string(t) +
                        " found β = " + std::to_string(beta) + ", ᾱ = " + std::to_string(alphas_cumprod[t]));
    const double alpha_bar = alphas_cumprod[t];
    const double alpha_bar_prev = t > 0 ? alphas_cumprod[t - 1] : 1.0;
    posterior_variance[t] = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar);
    tables.mean_x0_coef.push_back(beta * std::sqrt(alpha_bar_prev) / (1.0 - alpha_bar));
    tables.mean_xt_coef.push_back((1.0 - alpha_bar_prev) * std::sqrt(1.0 - beta) / (1.0 - alpha_bar));
    tables.log_beta.push_back(std::log(beta));
  }
  for (size_t t = 0; t < steps; ++t) {
    const double variance = t > 0 ? posterior_variance[t] : steps > 1 ? posterior_variance[1] : betas[0];
    tables.log_variance_clipped.push_back(std::log(variance));
  }
  return tables;
}

// values[t_b] for each sample b, shaped [B, 1, …, 1] to broadcast against `like`.
torch::Tensor per_sample(const std::vector<double>& values, const torch::Tensor& t,
                         const torch::Tensor& like) {
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = -1;
  auto table = torch::tensor(values, torch::TensorOptions().dtype(torch::kFloat64)).to(like.device());
  return table.index_select(0, t.to(like.device(), torch::kInt64)).to(like.scalar_type()).view(shape);
}

void check_timesteps(const torch::Tensor& t, const torch::Tensor& like, const char* what) {
  if (t.dim() != 1 || like.dim() < 1 || t.size(0) != like.size(0) || t.is_floating_point())
    throw DataError(std::string(what) + ": t must be an integer tensor with one timestep per sample ([" +
                    std::to_string(like.dim() ? like.size(0) : 0) + "]), found " +
                    std::to_string(t.dim()) + "-d " + std::string(c10::toString(t.scalar_type())));
}

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

// Eq. 15: log Σ_θ = frac·log β_t + (1-frac)·log β̃_t, frac = (v+1)/2.
torch::Tensor interpolated_log_variance(const PosteriorTables& tables, const torch::Tensor& t,
                                        const torch::Tensor& var_interp) {
  auto frac = (var_interp + 1.0) / 2.0;                                            // [B, …]
  auto max_log = per_sample(tables.log_beta, t, var_interp);                       // [B, 1, …]
  auto min_log = per_sample(tables.log_variance_clipped, t, var_interp);           // [B, 1, …]
  return frac * max_log + (1.0 - frac) * min_log;                                  // [B, …]
}

}  // namespace

torch::Tensor learned_posterior_log_variance(const std::vector<double>& betas,
                                             const std::vector<double>& alphas_cumprod,
                                             const torch::Tensor& t, const torch::Tensor& var_interp) {
  check_timesteps(t, var_interp, "learned_posterior_log_variance");
  return interpolated_log_variance(posterior_tables(betas, alphas_cumprod), t, var_interp);
}

torch::Tensor vlb_loss(const std::vector<double>& betas, const std::vector<double>& alphas_cumprod,
                       const torch::Tensor& t, const torch::Tensor& x_t, const torch::Tensor& x0,
                       const torch::Tensor& x0_pred, const torch::Tensor& var_interp) {
  check_timesteps(t, x_t, "vlb_loss");
  if (!x0.sizes().equals(x_t.sizes()) || !x0_pred.sizes().equals(x_t.sizes()) ||
      !var_interp.sizes().equals(x_t.sizes()))
    throw DataError("vlb_loss: x_t, x0, x0_pred and var_interp must have the same shape");
  const PosteriorTables tables = posterior_tables(betas, alphas_cumprod);
  const auto dtype = compute_dtype(x_t);
  auto xt = x_t.to(dtype), x0_true = x0.to(dtype);
  auto x0_model = x0_pred.detach().to(dtype);  // stop-gradient: L_vlb trains only the variance
  auto mean_x0_coef = per_sample(tables.mean_x0_coef, t, xt);  // [B, 1, …]
  auto mean_xt_coef = per_sample(tables.mean_xt_coef, t, xt);  // [B, 1, …]

  // q(x_{t-1} | x_t, x0) = N(μ̃_t, β̃_t) and p_θ(x_{t-1} | x_t) = N(μ̃_t(x_t, x0_pred), Σ_θ).
  auto true_mean = mean_x0_coef * x0_true + mean_xt_coef * xt;               // [B, …]
  auto true_log_var = per_sample(tables.log_variance_clipped, t, xt);        // [B, 1, …]
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
