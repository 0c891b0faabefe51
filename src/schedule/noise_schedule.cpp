#include "diffuse/schedule/noise_schedule.h"

#include <algorithm>
#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/schedule/sigma_spacing.h"

namespace diffuse {
namespace {

constexpr double kPi = 3.14159265358979323846;

}  // namespace

double NoiseSchedule::sigma_from_alpha_bar(double alpha_bar) {
  return std::sqrt((1.0 - alpha_bar) / alpha_bar);
}

double NoiseSchedule::alpha_bar_from_sigma(double sigma) { return 1.0 / (1.0 + sigma * sigma); }

double NoiseSchedule::flow_t_from_sigma(double sigma) { return sigma / (1.0 + sigma); }

double NoiseSchedule::sigma_from_flow_t(double t) { return t / (1.0 - t); }

NoiseSchedule NoiseSchedule::from_options(const DiffusionOptions& o) {
  switch (o.schedule) {
    case ScheduleKind::vp_linear: return vp_linear(o.timesteps, o.beta_start, o.beta_end);
    case ScheduleKind::vp_cosine: return vp_cosine(o.timesteps, o.cosine_s, o.max_beta);
    case ScheduleKind::edm: return edm(o.sigma_min, o.sigma_max, o.sigma_data);
    case ScheduleKind::ve: return ve(o.sigma_min, o.sigma_max);
    case ScheduleKind::flow: return flow(o.sigma_min, o.sigma_max, o.shift);
  }
  throw std::logic_error("NoiseSchedule::from_options: unhandled schedule");
}

// Shared tail of the VP constructors: ᾱ_t = Π_{s≤t}(1 - β_s), σ_t = √((1-ᾱ_t)/ᾱ_t).
static void finish_vp(std::vector<double>& betas, std::vector<double>& alphas_cumprod,
                      std::vector<double>& sigmas, std::vector<double>& log_sigmas) {
  alphas_cumprod.resize(betas.size());
  double prod = 1.0;
  for (size_t i = 0; i < betas.size(); ++i) {
    prod *= 1.0 - betas[i];
    alphas_cumprod[i] = prod;
  }
  sigmas.resize(betas.size());
  log_sigmas.resize(betas.size());
  for (size_t i = 0; i < betas.size(); ++i) {
    sigmas[i] = NoiseSchedule::sigma_from_alpha_bar(alphas_cumprod[i]);
    log_sigmas[i] = std::log(sigmas[i]);
  }
}

NoiseSchedule NoiseSchedule::vp_linear(int timesteps, double beta_start, double beta_end) {
  if (timesteps < 2) throw ConfigError("diffusion.timesteps must be >= 2");
  NoiseSchedule s;
  s.kind_ = ScheduleKind::vp_linear;
  // Ho et al. 2020 §4: β linear from β_1 to β_T.
  s.betas_.resize(timesteps);
  for (int i = 0; i < timesteps; ++i)
    s.betas_[i] = beta_start + (beta_end - beta_start) * i / (timesteps - 1.0);
  finish_vp(s.betas_, s.alphas_cumprod_, s.sigmas_, s.log_sigmas_);
  s.sigma_min_ = s.sigmas_.front();
  s.sigma_max_ = s.sigmas_.back();
  return s;
}

NoiseSchedule NoiseSchedule::vp_cosine(int timesteps, double offset, double max_beta) {
  if (timesteps < 2) throw ConfigError("diffusion.timesteps must be >= 2");
  NoiseSchedule s;
  s.kind_ = ScheduleKind::vp_cosine;
  // Nichol & Dhariwal 2021 eq. 17: ᾱ_t = f(t)/f(0), f(t) = cos²(((t/T)+s)/(1+s)·π/2), and
  // β_t = 1 - ᾱ_t/ᾱ_{t-1} clipped at max_beta to avoid the singularity at t = T.
  auto f = [&](double t) {
    const double c = std::cos((t / timesteps + offset) / (1.0 + offset) * kPi / 2.0);
    return c * c;
  };
  s.betas_.resize(timesteps);
  for (int i = 0; i < timesteps; ++i)
    s.betas_[i] = std::min(1.0 - f(i + 1.0) / f(i), max_beta);
  finish_vp(s.betas_, s.alphas_cumprod_, s.sigmas_, s.log_sigmas_);
  s.sigma_min_ = s.sigmas_.front();
  s.sigma_max_ = s.sigmas_.back();
  return s;
}

NoiseSchedule NoiseSchedule::edm(double sigma_min, double sigma_max, double sigma_data) {
  if (!(sigma_min > 0 && sigma_max > sigma_min))
    throw ConfigError("diffusion: EDM needs 0 < sigma_min < sigma_max");
  NoiseSchedule s;
  s.kind_ = ScheduleKind::edm;
  s.sigma_min_ = sigma_min;
  s.sigma_max_ = sigma_max;
  s.sigma_data_ = sigma_data;
  return s;
}

NoiseSchedule NoiseSchedule::ve(double sigma_min, double sigma_max) {
  if (!(sigma_min > 0 && sigma_max > sigma_min))
    throw ConfigError("diffusion: VE needs 0 < sigma_min < sigma_max");
  NoiseSchedule s;
  s.kind_ = ScheduleKind::ve;
  s.sigma_min_ = sigma_min;
  s.sigma_max_ = sigma_max;
  return s;
}

NoiseSchedule NoiseSchedule::flow(double sigma_min, double sigma_max, double shift) {
  if (!(sigma_min > 0 && sigma_max > sigma_min))
    throw ConfigError("diffusion: flow needs 0 < sigma_min < sigma_max (t from " +
                      format_double(flow_t_from_sigma(sigma_min)) + " to " +
                      format_double(flow_t_from_sigma(sigma_max)) + ")");
  if (!(shift > 0)) throw ConfigError("diffusion.shift must be > 0");
  NoiseSchedule s;
  s.kind_ = ScheduleKind::flow;
  // SD3 (Esser et al. 2024, eq. 23): t_m = s·t_n / (1 + (s-1) t_n), i.e. σ_m = s·σ_n.
  s.sigma_min_ = shift * sigma_min;
  s.sigma_max_ = shift * sigma_max;
  s.shift_ = shift;
  return s;
}

torch::Tensor NoiseSchedule::noise_input(const torch::Tensor& sigma) const {
  const auto s = sigma.to(torch::kFloat32);
  switch (kind_) {
    case ScheduleKind::vp_linear:
    case ScheduleKind::vp_cosine: return t_from_sigma(s);
    case ScheduleKind::edm: return s.log() / 4.0;
    case ScheduleKind::ve: return (s / 2.0).log();
    case ScheduleKind::flow: {
      const auto unshifted = s / shift_;
      return 1000.0 * unshifted / (1.0 + unshifted);
    }
  }
  throw std::logic_error("NoiseSchedule::noise_input: unhandled schedule");
}

TimestepSpacing NoiseSchedule::default_spacing() const {
  switch (kind_) {
    case ScheduleKind::vp_linear:
    case ScheduleKind::vp_cosine: return TimestepSpacing::trailing;
    case ScheduleKind::edm: return TimestepSpacing::karras;
    case ScheduleKind::ve: return TimestepSpacing::geometric;
    case ScheduleKind::flow: return TimestepSpacing::linear_t;
  }
  throw std::logic_error("NoiseSchedule::default_spacing: unhandled schedule");
}

double NoiseSchedule::t_from_sigma(double sigma) const {
  if (!is_vp()) throw std::logic_error("t_from_sigma is defined for VP schedules only");
  const double log_sigma = std::log(std::max(sigma, 1e-30));
  if (log_sigma <= log_sigmas_.front()) return 0.0;
  if (log_sigma >= log_sigmas_.back()) return static_cast<double>(log_sigmas_.size() - 1);
  const auto hi = std::upper_bound(log_sigmas_.begin(), log_sigmas_.end(), log_sigma);
  const auto i = static_cast<size_t>(hi - log_sigmas_.begin()) - 1;
  const double w = (log_sigma - log_sigmas_[i]) / (log_sigmas_[i + 1] - log_sigmas_[i]);
  return static_cast<double>(i) + w;
}

torch::Tensor NoiseSchedule::t_from_sigma(const torch::Tensor& sigma) const {
  if (!is_vp()) throw std::logic_error("t_from_sigma is defined for VP schedules only");
  // Same interpolation as the scalar form, on sigma's device, without host syncs.
  auto grid = torch::tensor(log_sigmas_, torch::TensorOptions().dtype(torch::kFloat64))
                  .to(sigma.device());
  auto log_sigma = sigma.to(torch::kFloat64).clamp_min(1e-30).log();
  const int64_t n = static_cast<int64_t>(log_sigmas_.size());
  auto hi = torch::searchsorted(grid, log_sigma, /*out_int32=*/false, /*right=*/true)
                .clamp(1, n - 1);
  auto lo = hi - 1;
  auto g_lo = grid.index_select(0, lo.flatten()).view_as(log_sigma);
  auto g_hi = grid.index_select(0, hi.flatten()).view_as(log_sigma);
  auto w = ((log_sigma - g_lo) / (g_hi - g_lo)).clamp(0.0, 1.0);
  return (lo.to(torch::kFloat64) + w).to(sigma.scalar_type());
}

}  // namespace diffuse
