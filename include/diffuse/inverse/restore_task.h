#pragma once
// The typed form of a restore task YAML (configs/restore/*.yaml): which operator degrades
// the image, the measurement noise, and how DPS samples the posterior. Parsed once, strictly:
// an unknown key, a key the chosen operator or noise type does not use, or an invalid
// combination is a ConfigError naming file:line and the key. parse → emit → parse is the
// identity (emit writes only the keys the task uses).
//
//   operator: {name, box_size, box_top, box_left, random_box, keep_fraction, kernel_size,
//              blur_sigma, intensity, factor, seed}
//   noise: {type: gaussian | poisson, sigma, rate}
//   method: dps | dps_linear      zeta: ζ or ζ'      normalize_zeta: true | false
//   clip_denoised: c > 0 clamps x̂0 to [-c, c] (default 1: images in [-1, 1]), 0 turns it off
//   steps: N      spacing: leading | trailing | linspace | karras
//   class: -1 (unconditional) or a label      cfg: guidance weight (1 = plain conditional)
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

RestoreTask parse_restore_task(ConfigNode& root);
YAML::Node emit_restore_task(const RestoreTask& task);
// Loads and parses `path`, applying `key.path=value` overrides first (as --set does).
RestoreTask load_restore_task(const std::string& path, const std::vector<std::string>& overrides = {});

// The operator keys each registered operator reads (besides `name`).
std::vector<std::string> operator_keys(const std::string& operator_name);

}  // namespace diffuse
