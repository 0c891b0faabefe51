#pragma once
// The typed form of a restore task YAML (configs/restore/*.yaml): which operator degrades
// the image, the measurement noise, and how DPS samples the posterior. Described once by
// restore_task_schema() (README.md "Restore task reference"), from the schemas of the
// operator options, the measurement noise and DPS. Parsed strictly: an unknown key, a key
// the chosen operator or noise type does not use, or an invalid combination is a
// ConfigError naming file:line and the key. parse → emit → parse is the identity (emit
// writes only the keys the task uses).
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/config_node.h"
#include "diffuse/inverse/dps.h"
#include "diffuse/inverse/measurement_noise.h"
#include "diffuse/inverse/operator.h"
#include "diffuse/schedule/sigma_spacing.h"

namespace diffuse {

// DPS settings for images in [-1, 1]: x̂0 clamped to that range, as in the reference code.
inline DpsOptions image_dps_defaults() {
  DpsOptions options;
  options.clip_denoised = 1.0;
  return options;
}

struct RestoreTask {
  OperatorOptions op;                 // key "operator"
  MeasurementNoiseOptions noise;
  DpsOptions dps = image_dps_defaults();  // keys method, zeta, normalize_zeta, clip_denoised (top level)
  int steps = 1000;
  TimestepSpacing spacing = TimestepSpacing::leading;
  int64_t class_label = -1;           // key "class"; -1 = unconditional
  double cfg = 1.0;                   // classifier-free guidance weight (needs a class)
};

const OptionSchema<RestoreTask>& restore_task_schema();

RestoreTask parse_restore_task(ConfigNode& root);
YAML::Node emit_restore_task(const RestoreTask& task);
// Loads and parses `path`, applying `key.path=value` overrides first (as --set does).
RestoreTask load_restore_task(const std::string& path, const std::vector<std::string>& overrides = {});

}  // namespace diffuse
