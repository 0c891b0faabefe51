#pragma once
// Noise schedules in σ-space (DESIGN §3), one row each of from_options:
//   vp_linear, vp_cosine  discrete grids of ᾱ_t, t = 1..T, σ_t = √((1-ᾱ_t)/ᾱ_t) (DDPM);
//   edm                   continuous σ in [σ_min, σ_max] (Karras et al. 2022);
//   ve                    continuous σ in [σ_min, σ_max], geometric (NCSN/SMLD, Song & Ermon
//                         2019 §4.2; the VE SDE of Song et al. 2021 eq. 30);
//   flow                  the linear interpolant x_t = (1-t) x0 + t ε (rectified flow, Liu et
//                         al. 2023 eq. 1; flow matching, Lipman et al. 2023 eq. 23 with
//                         σ_min = 0), i.e. σ = t/(1-t) and x̃ = x_t/(1-t), with SD3's shift.
// Each schedule names the network's noise input c_noise(σ) and its default sampling spacing.
#include <torch/torch.h>

#include <vector>

#include "diffuse/schedule/diffusion_options.h"

namespace diffuse {

enum class TimestepSpacing;

class NoiseSchedule {
 public:
  static NoiseSchedule from_options(const DiffusionOptions& options);
  static NoiseSchedule vp_linear(int timesteps, double beta_start, double beta_end);
  static NoiseSchedule vp_cosine(int timesteps, double s, double max_beta);
  static NoiseSchedule edm(double sigma_min, double sigma_max, double sigma_data);
  static NoiseSchedule ve(double sigma_min, double sigma_max);
  // σ_min, σ_max before the shift; the schedule's σ range is shift·[σ_min, σ_max].
  static NoiseSchedule flow(double sigma_min, double sigma_max, double shift);

  ScheduleKind kind() const { return kind_; }
  // A discrete VP grid (vp_linear, vp_cosine).
  bool is_vp() const { return is_vp_schedule(kind_); }
  // T for VP schedules, 0 for the continuous ones.
  int timesteps() const { return static_cast<int>(alphas_cumprod_.size()); }
  // ᾱ_t and β_t for t = 1..T, stored at index t-1 (VP only).
  const std::vector<double>& alphas_cumprod() const { return alphas_cumprod_; }
  const std::vector<double>& betas() const { return betas_; }
  // σ_t for t = 1..T at index t-1, increasing (VP only).
  const std::vector<double>& sigmas() const { return sigmas_; }
  // The σ range (VP: the grid's ends; flow: after the shift).
  double sigma_min() const { return sigma_min_; }
  double sigma_max() const { return sigma_max_; }
  double sigma_data() const { return sigma_data_; }
  double shift() const { return shift_; }

  // VP ↔ σ-space: σ = √((1-ᾱ)/ᾱ), ᾱ = 1/(1+σ²).
  static double sigma_from_alpha_bar(double alpha_bar);
  static double alpha_bar_from_sigma(double sigma);
  // Flow ↔ σ-space: σ = t/(1-t), t = σ/(1+σ) (no shift; the shift scales σ).
  static double flow_t_from_sigma(double sigma);
  static double sigma_from_flow_t(double t);

  // Continuous 0-indexed timestep t(σ) ∈ [0, T-1] by linear interpolation of log σ over the
  // training grid (VP only; clamps outside the grid). Networks trained on integer t get t(σ).
  double t_from_sigma(double sigma) const;
  torch::Tensor t_from_sigma(const torch::Tensor& sigma) const;

  // The network's noise input c_noise(σ) for [B] σ, float32 (Karras et al. 2022 Table 1):
  // VP t(σ) on the training grid ((M-1)t in the table); EDM ln(σ)/4; VE ln(σ/2); flow
  // 1000·t with t = σ/(1+σ) (σ unshifted: the shift changes where the network is trained,
  // not its time axis), the timestep scale of SD3 (Esser et al. 2024 §3, diffusers'
  // FlowMatchEulerDiscreteScheduler).
  torch::Tensor noise_input(const torch::Tensor& sigma) const;

  // The spacing that sampling uses unless told otherwise: trailing for VP grids, Karras
  // (ρ = 7) for EDM, geometric for VE (Song et al. 2021 App. C), linear in t for flow.
  TimestepSpacing default_spacing() const;

 private:
  ScheduleKind kind_ = ScheduleKind::edm;
  std::vector<double> betas_, alphas_cumprod_, sigmas_, log_sigmas_;
  double sigma_min_ = 0.002, sigma_max_ = 80.0, sigma_data_ = 0.5, shift_ = 1.0;
};

}  // namespace diffuse
