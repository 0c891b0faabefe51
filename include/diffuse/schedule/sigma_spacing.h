#pragma once
// Sampling σ grids, host side in float64, always ending in σ = 0 (DESIGN §3).
#include <string>
#include <vector>

#include "diffuse/schedule/noise_schedule.h"

namespace diffuse {

enum class TimestepSpacing { leading, trailing, linspace, karras };
inline constexpr std::array<EnumName<TimestepSpacing>, 4> kTimestepSpacingNames{{
    {"leading", TimestepSpacing::leading},
    {"trailing", TimestepSpacing::trailing},
    {"linspace", TimestepSpacing::linspace},
    {"karras", TimestepSpacing::karras},
}};
TimestepSpacing timestep_spacing_from_name(const std::string& name);  // ConfigError lists names

// Karras et al. 2022 eq. 5: σ_i = (σ_max^{1/ρ} + i/(n-1)(σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ, then 0.
std::vector<double> karras_sigmas(int steps, double sigma_min, double sigma_max, double rho = 7.0);

// `steps` σ values of a VP training grid picked by integer timesteps (diffusers' spacings:
// leading, trailing, linspace), decreasing, then 0. steps == T gives the full grid.
std::vector<double> vp_sigmas(const NoiseSchedule& schedule, int steps, TimestepSpacing spacing);

// The default for a schedule: Karras for EDM; for VP the given spacing (Karras too if asked,
// between the grid's σ_min and σ_max).
std::vector<double> sampling_sigmas(const NoiseSchedule& schedule, int steps,
                                    TimestepSpacing spacing);

}  // namespace diffuse
