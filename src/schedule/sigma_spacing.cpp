#include "diffuse/schedule/sigma_spacing.h"

#include <algorithm>
#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/core/text.h"

namespace diffuse {

TimestepSpacing timestep_spacing_from_name(const std::string& name) {
  if (const auto* entry = find_by_name(kTimestepSpacingNames, name)) return entry->value;
  throw ConfigError("unknown timestep spacing '" + name +
                    "'; valid spacings: " + join(names_of(kTimestepSpacingNames)));
}

std::vector<double> karras_sigmas(int steps, double sigma_min, double sigma_max, double rho) {
  if (steps < 1) throw ConfigError("sampling needs at least 1 step, found " + std::to_string(steps));
  std::vector<double> sigmas;
  const double max_inv = std::pow(sigma_max, 1.0 / rho);
  const double min_inv = std::pow(sigma_min, 1.0 / rho);
  for (int i = 0; i < steps; ++i) {
    const double frac = steps == 1 ? 0.0 : static_cast<double>(i) / (steps - 1);
    sigmas.push_back(std::pow(max_inv + frac * (min_inv - max_inv), rho));
  }
  sigmas.push_back(0.0);
  return sigmas;
}

std::vector<double> geometric_sigmas(int steps, double sigma_min, double sigma_max) {
  if (steps < 1) throw ConfigError("sampling needs at least 1 step, found " + std::to_string(steps));
  std::vector<double> sigmas;
  for (int i = 0; i < steps; ++i) {
    const double frac = steps == 1 ? 0.0 : static_cast<double>(i) / (steps - 1);
    sigmas.push_back(sigma_max * std::pow(sigma_min / sigma_max, frac));
  }
  sigmas.push_back(0.0);
  return sigmas;
}

std::vector<double> linear_t_sigmas(int steps, double sigma_max, double shift) {
  if (steps < 1) throw ConfigError("sampling needs at least 1 step, found " + std::to_string(steps));
  const double t_max = NoiseSchedule::flow_t_from_sigma(sigma_max / shift);
  std::vector<double> sigmas;
  for (int i = 0; i < steps; ++i)
    sigmas.push_back(shift * NoiseSchedule::sigma_from_flow_t(t_max * (1.0 - static_cast<double>(i) / steps)));
  sigmas.push_back(0.0);
  return sigmas;
}

std::vector<double> vp_sigmas(const NoiseSchedule& schedule, int steps, TimestepSpacing spacing) {
  const int T = schedule.timesteps();
  if (T == 0) throw ConfigError("timestep spacings need a VP schedule; use karras for EDM models");
  if (steps < 1 || steps > T)
    throw ConfigError("steps must lie in [1, " + std::to_string(T) + "] for this VP schedule, found " +
                      std::to_string(steps));
  // 0-indexed timesteps, decreasing (diffusers' DDIMScheduler conventions).
  std::vector<int> ts;
  switch (spacing) {
    case TimestepSpacing::leading: {
      const int ratio = T / steps;
      for (int i = steps - 1; i >= 0; --i) ts.push_back(i * ratio);
      break;
    }
    case TimestepSpacing::trailing: {
      const double ratio = static_cast<double>(T) / steps;
      for (int i = 0; i < steps; ++i)
        ts.push_back(static_cast<int>(std::lround(T - i * ratio)) - 1);
      break;
    }
    case TimestepSpacing::linspace: {
      for (int i = steps - 1; i >= 0; --i)
        ts.push_back(static_cast<int>(std::lround(steps == 1 ? T - 1.0 : i * (T - 1.0) / (steps - 1))));
      break;
    }
    case TimestepSpacing::karras:
    case TimestepSpacing::geometric:
    case TimestepSpacing::linear_t: return sampling_sigmas(schedule, steps, spacing);
  }
  std::vector<double> sigmas;
  for (int t : ts) sigmas.push_back(schedule.sigmas()[static_cast<size_t>(std::clamp(t, 0, T - 1))]);
  sigmas.push_back(0.0);
  return sigmas;
}

std::vector<double> sampling_sigmas(const NoiseSchedule& schedule, int steps,
                                    TimestepSpacing spacing) {
  switch (spacing) {
    case TimestepSpacing::leading:
    case TimestepSpacing::trailing:
    case TimestepSpacing::linspace:
      if (schedule.is_vp()) return vp_sigmas(schedule, steps, spacing);
      return sampling_sigmas(schedule, steps, schedule.default_spacing());
    case TimestepSpacing::karras: return karras_sigmas(steps, schedule.sigma_min(), schedule.sigma_max());
    case TimestepSpacing::geometric:
      return geometric_sigmas(steps, schedule.sigma_min(), schedule.sigma_max());
    case TimestepSpacing::linear_t: return linear_t_sigmas(steps, schedule.sigma_max(), schedule.shift());
  }
  throw std::logic_error("sampling_sigmas: unhandled spacing");
}

}  // namespace diffuse
