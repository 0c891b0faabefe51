#pragma once
// Sampling σ grids, host side in float64, always ending in σ = 0 (DESIGN §3).
#include <string>
#include <vector>

#include "diffuse/schedule/noise_schedule.h"

namespace diffuse {

// leading, trailing, linspace pick timesteps of a VP grid; karras, geometric and linear_t
// span any schedule's [σ_min, σ_max].
enum class TimestepSpacing { leading, trailing, linspace, karras, geometric, linear_t };
inline constexpr std::array<EnumName<TimestepSpacing>, 6> kTimestepSpacingNames{{
    {"leading", TimestepSpacing::leading},
    {"trailing", TimestepSpacing::trailing},
    {"linspace", TimestepSpacing::linspace},
    {"karras", TimestepSpacing::karras},
    {"geometric", TimestepSpacing::geometric},
    {"linear_t", TimestepSpacing::linear_t},
}};
TimestepSpacing timestep_spacing_from_name(const std::string& name);  // ConfigError lists names

// Karras et al. 2022 eq. 5: σ_i = (σ_max^{1/ρ} + i/(n-1)(σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ, then 0.
std::vector<double> karras_sigmas(int steps, double sigma_min, double sigma_max, double rho = 7.0);

// NCSN/SMLD levels (Song & Ermon 2019 §4.2; Song et al. 2021 eq. 30 at t = 1 - i/(n-1)):
// σ_i = σ_max (σ_min/σ_max)^{i/(n-1)}, i = 0..n-1, then 0.
std::vector<double> geometric_sigmas(int steps, double sigma_min, double sigma_max);

// Flow sampling (rectified flow / SD3): t_i = t_max (1 - i/n), i = 0..n-1, with
// t_max = t(σ_max/shift), and σ_i = shift·t_i/(1 - t_i), then 0 (t_n = 0). Euler on this grid
// is the usual x_{t'} = x_t + (t' - t) v step (see sampler tests).
std::vector<double> linear_t_sigmas(int steps, double sigma_max, double shift = 1.0);

// `steps` σ values of a VP training grid picked by integer timesteps (diffusers' spacings:
// leading, trailing, linspace), decreasing, then 0. steps == T gives the full grid.
std::vector<double> vp_sigmas(const NoiseSchedule& schedule, int steps, TimestepSpacing spacing);

// The σ list for sampling `schedule` with `spacing`. The VP grid spacings (leading,
// trailing, linspace) on a schedule without a grid give that schedule's default spacing
// (NoiseSchedule::default_spacing), so one default serves every model.
std::vector<double> sampling_sigmas(const NoiseSchedule& schedule, int steps,
                                    TimestepSpacing spacing);

}  // namespace diffuse
