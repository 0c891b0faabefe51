#pragma once
// Noise schedules in σ-space (DESIGN §3). VP schedules (DDPM linear, cosine) are discrete
// grids of ᾱ_t, t = 1..T, mapped to σ_t = √((1-ᾱ_t)/ᾱ_t); EDM is continuous in σ.
#include <torch/torch.h>

#include <vector>

#include "diffuse/core/experiment_config.h"

namespace diffuse {

class NoiseSchedule {
 public:
  static NoiseSchedule from_options(const DiffusionOptions& options);
  static NoiseSchedule vp_linear(int timesteps, double beta_start, double beta_end);
  static NoiseSchedule vp_cosine(int timesteps, double s, double max_beta);
  static NoiseSchedule edm(double sigma_min, double sigma_max, double sigma_data);

  ScheduleKind kind() const { return kind_; }
  bool is_vp() const { return kind_ != ScheduleKind::edm; }
  // T for VP schedules, 0 for EDM.
  int timesteps() const { return static_cast<int>(alphas_cumprod_.size()); }
  // ᾱ_t and β_t for t = 1..T, stored at index t-1 (VP only).
  const std::vector<double>& alphas_cumprod() const { return alphas_cumprod_; }
  const std::vector<double>& betas() const { return betas_; }
  // σ_t for t = 1..T at index t-1, increasing (VP only).
  const std::vector<double>& sigmas() const { return sigmas_; }
  double sigma_min() const { return sigma_min_; }
  double sigma_max() const { return sigma_max_; }
  double sigma_data() const { return sigma_data_; }

  // VP ↔ σ-space: σ = √((1-ᾱ)/ᾱ), ᾱ = 1/(1+σ²).
  static double sigma_from_alpha_bar(double alpha_bar);
  static double alpha_bar_from_sigma(double sigma);

  // Continuous 0-indexed timestep t(σ) ∈ [0, T-1] by linear interpolation of log σ over the
  // training grid (VP only; clamps outside the grid). Networks trained on integer t get t(σ).
  double t_from_sigma(double sigma) const;
  torch::Tensor t_from_sigma(const torch::Tensor& sigma) const;

 private:
  ScheduleKind kind_ = ScheduleKind::edm;
  std::vector<double> betas_, alphas_cumprod_, sigmas_, log_sigmas_;
  double sigma_min_ = 0.002, sigma_max_ = 80.0, sigma_data_ = 0.5;
};

}  // namespace diffuse
