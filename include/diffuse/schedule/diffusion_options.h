#pragma once
// The diffusion: section of an experiment config: the noise schedule, what the network
// predicts and how training draws σ. Keys, valid values and meanings are described once, by
// diffusion_options_schema() (README.md "Config reference").
#include <array>

#include "diffuse/core/option_schema.h"

namespace diffuse {

enum class ScheduleKind { vp_linear, vp_cosine, edm, ve, flow };
inline constexpr std::array<EnumName<ScheduleKind>, 5> kScheduleKindNames{{
    {"vp_linear", ScheduleKind::vp_linear},
    {"vp_cosine", ScheduleKind::vp_cosine},
    {"edm", ScheduleKind::edm},
    {"ve", ScheduleKind::ve},
    {"flow", ScheduleKind::flow},
}};

enum class Prediction { eps, v, x0, edm, flow };
inline constexpr std::array<EnumName<Prediction>, 5> kPredictionNames{{
    {"eps", Prediction::eps},
    {"v", Prediction::v},
    {"x0", Prediction::x0},
    {"edm", Prediction::edm},
    {"flow", Prediction::flow},
}};

// How training draws σ (losses/dsm_loss.h has the formulas).
enum class SigmaDistribution { grid, log_normal, log_uniform, uniform_t };
inline constexpr std::array<EnumName<SigmaDistribution>, 4> kSigmaDistributionNames{{
    {"grid", SigmaDistribution::grid},
    {"log_normal", SigmaDistribution::log_normal},
    {"log_uniform", SigmaDistribution::log_uniform},
    {"uniform_t", SigmaDistribution::uniform_t},
}};

enum class LossWeighting { uniform, min_snr, edm };
inline constexpr std::array<EnumName<LossWeighting>, 3> kLossWeightingNames{{
    {"uniform", LossWeighting::uniform},
    {"min_snr", LossWeighting::min_snr},
    {"edm", LossWeighting::edm},
}};

// The discrete VP schedules (DDPM's grid of T timesteps).
inline bool is_vp_schedule(ScheduleKind kind) {
  return kind == ScheduleKind::vp_linear || kind == ScheduleKind::vp_cosine;
}

// Defaults are vp_linear's; apply_schedule_defaults gives another schedule's own.
struct DiffusionOptions {
  ScheduleKind schedule = ScheduleKind::vp_linear;
  int timesteps = 1000;      // T for VP schedules
  double beta_start = 1e-4;  // vp_linear
  double beta_end = 0.02;    // vp_linear
  double cosine_s = 0.008;   // vp_cosine offset s
  double max_beta = 0.999;   // vp_cosine β clip
  double sigma_min = 0.002;  // edm, ve, flow
  double sigma_max = 80.0;   // edm, ve, flow
  double sigma_data = 0.5;   // edm preconditioning σ_d
  double shift = 1.0;        // flow: SD3's resolution shift, σ → shift·σ
  Prediction prediction = Prediction::eps;
  SigmaDistribution sigma_distribution = SigmaDistribution::grid;
  LossWeighting weighting = LossWeighting::uniform;
  double min_snr_gamma = 5.0;
  double p_mean = -1.2;  // log-normal training σ: ln σ ~ N(p_mean, p_std²)
  double p_std = 1.2;
  double p_uncond = 0.0;      // label dropout to the null class (classifier-free guidance)
  double vlb_weight = 0.001;  // λ of L_simple + λ L_vlb when model.learn_sigma
};

// Sets the defaults that `o.schedule` brings (its published settings).
void apply_schedule_defaults(DiffusionOptions& o);

const OptionSchema<DiffusionOptions>& diffusion_options_schema();

}  // namespace diffuse
