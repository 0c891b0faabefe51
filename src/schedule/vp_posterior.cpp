#include "diffuse/schedule/vp_posterior.h"

#include <cmath>
#include <string>

#include "diffuse/core/error.h"

namespace diffuse {

VpPosteriorTables vp_posterior_tables(const std::vector<double>& betas, const std::vector<double>& alphas_cumprod) {
  if (betas.empty() || betas.size() != alphas_cumprod.size())
    throw ConfigError("VP posterior: the grid needs one β_t and one ᾱ_t per timestep; got " +
                      std::to_string(betas.size()) + " betas and " +
                      std::to_string(alphas_cumprod.size()) + " alphas_cumprod");
  const size_t steps = betas.size();
  VpPosteriorTables tables;
  std::vector<double> posterior_variance(steps);
  for (size_t t = 0; t < steps; ++t) {
    const double beta = betas[t];
    if (!(beta > 0.0 && beta < 1.0) || !(alphas_cumprod[t] > 0.0 && alphas_cumprod[t] < 1.0))
      throw ConfigError("VP posterior: β_t and ᾱ_t must lie in (0, 1); at t = " + std::to_string(t) +
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

torch::Tensor per_timestep(const std::vector<double>& values, const torch::Tensor& t, const torch::Tensor& like) {
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

torch::Tensor interpolated_log_variance(const VpPosteriorTables& tables, const torch::Tensor& t,
                                        const torch::Tensor& var_interp) {
  auto frac = (var_interp + 1.0) / 2.0;                                    // [B, …]
  auto max_log = per_timestep(tables.log_beta, t, var_interp);             // [B, 1, …]
  auto min_log = per_timestep(tables.log_variance_clipped, t, var_interp); // [B, 1, …]
  return frac * max_log + (1.0 - frac) * min_log;                          // [B, …]
}

torch::Tensor learned_posterior_log_variance(const std::vector<double>& betas,
                                             const std::vector<double>& alphas_cumprod,
                                             const torch::Tensor& t, const torch::Tensor& var_interp) {
  check_timesteps(t, var_interp, "learned_posterior_log_variance");
  return interpolated_log_variance(vp_posterior_tables(betas, alphas_cumprod), t, var_interp);
}

torch::Tensor vp_reverse_log_variance(const NoiseSchedule& schedule, const torch::Tensor& sigma,
                                      const torch::Tensor& var_interp) {
  if (!var_interp.defined())
    throw Error("learned-variance DDPM: the denoiser returned no variance channels");
  const auto sigmas = sigma.to(torch::kCPU, torch::kFloat64).contiguous();
  std::vector<int64_t> t(static_cast<size_t>(sigmas.numel()));
  for (size_t b = 0; b < t.size(); ++b)
    t[b] = static_cast<int64_t>(std::llround(schedule.t_from_sigma(sigmas.data_ptr<double>()[b])));
  const auto timesteps = torch::tensor(t, torch::TensorOptions(torch::kLong)).to(var_interp.device());
  return learned_posterior_log_variance(schedule.betas(), schedule.alphas_cumprod(), timesteps,
                                        var_interp.to(torch::kFloat32));
}

}  // namespace diffuse
