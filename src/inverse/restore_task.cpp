#include "diffuse/inverse/restore_task.h"

#include <algorithm>
#include <limits>

#include "diffuse/core/error.h"
#include "diffuse/core/text.h"

namespace diffuse {
namespace {

// Every key that some operator reads, in the order they are emitted.
const std::vector<std::string> kAllOperatorKeys{"box_size",   "box_top",     "box_left",
                                                "random_box", "keep_fraction", "kernel_size",
                                                "blur_sigma", "intensity",   "factor",
                                                "seed"};

bool contains(const std::vector<std::string>& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

// Keys that belong to another variant (e.g. keep_fraction under inpaint_box) are errors that
// say which variant uses them, rather than being silently ignored.
void reject_foreign_keys(ConfigNode& n, const std::vector<std::string>& all_keys,
                         const std::vector<std::string>& used_keys, const std::string& variant) {
  for (const auto& key : all_keys)
    if (n.has(key) && !contains(used_keys, key))
      n.fail(key, "not used by " + variant + " (its keys: " + (used_keys.empty() ? "none" : join(used_keys)) +
                      ")");
}

OperatorOptions parse_operator(ConfigNode n) {
  OperatorOptions o;
  n.require("name", o.name);
  if (!find_by_name(operator_table(), o.name))
    n.fail("name", "unknown operator '" + o.name + "'; valid operators: " + operator_names());
  const std::vector<std::string> keys = operator_keys(o.name);
  reject_foreign_keys(n, kAllOperatorKeys, keys, "operator '" + o.name + "'");

  // Only the operator's own keys are read, so a misspelt key lists just those as valid.
  const auto uses = [&](const char* key) { return contains(keys, key); };
  if (uses("box_size")) {
    n.read("box_size", o.box_size);
    n.check_int_range("box_size", o.box_size, 1, 4096);
    n.read("random_box", o.random_box);
    for (const char* key : {"box_top", "box_left"}) {
      if (o.random_box && n.has(key))
        n.fail(key, "cannot be set together with random_box: true (the position is drawn from seed)");
      int64_t& value = std::string(key) == "box_top" ? o.box_top : o.box_left;
      n.read(key, value);
      if (value < -1 || value > 4096) n.fail(key, "must lie in [0, 4096], or be -1 to centre the box");
    }
    if (!o.random_box && n.has("seed"))
      n.fail("seed", "only used with random_box: true (a fixed box has no randomness)");
  }
  if (uses("keep_fraction")) {
    n.read("keep_fraction", o.keep_fraction);
    if (!(o.keep_fraction > 0.0 && o.keep_fraction <= 1.0))
      n.fail("keep_fraction", "must lie in (0, 1], found " + format_double(o.keep_fraction));
  }
  if (uses("kernel_size")) {
    n.read("kernel_size", o.kernel_size);
    if (o.kernel_size < 1 || o.kernel_size > 255 || o.kernel_size % 2 == 0)
      n.fail("kernel_size", "must be an odd number in [1, 255], found " + std::to_string(o.kernel_size));
  }
  if (uses("blur_sigma")) {
    n.read("blur_sigma", o.blur_sigma);
    if (!(o.blur_sigma > 0.0 && o.blur_sigma <= 100.0))
      n.fail("blur_sigma", "must lie in (0, 100] pixels, found " + format_double(o.blur_sigma));
  }
  if (uses("intensity")) {
    n.read("intensity", o.intensity);
    n.check_range("intensity", o.intensity, 0.0, 1.0);
  }
  if (uses("factor")) {
    n.read("factor", o.factor);
    if (o.factor != 2 && o.factor != 4) n.fail("factor", "must be 2 or 4, found " + std::to_string(o.factor));
  }
  if (uses("seed")) {
    auto seed = static_cast<int64_t>(o.seed);
    n.read("seed", seed);
    n.check_int_range("seed", seed, 0, std::numeric_limits<int64_t>::max());
    o.seed = static_cast<uint64_t>(seed);
  }
  n.finish();
  return o;
}

YAML::Node emit_operator(const OperatorOptions& o) {
  YAML::Node n;
  emit_value(n, "name", o.name);
  for (const auto& key : operator_keys(o.name)) {
    if (key == "box_size") emit_value(n, key, o.box_size);
    if (key == "random_box") emit_value(n, key, o.random_box);
    if (key == "box_top" && !o.random_box) emit_value(n, key, o.box_top);
    if (key == "box_left" && !o.random_box) emit_value(n, key, o.box_left);
    if (key == "keep_fraction") emit_value(n, key, o.keep_fraction);
    if (key == "kernel_size") emit_value(n, key, o.kernel_size);
    if (key == "blur_sigma") emit_value(n, key, o.blur_sigma);
    if (key == "intensity") emit_value(n, key, o.intensity);
    if (key == "factor") emit_value(n, key, o.factor);
    if (key == "seed" && (o.name != "inpaint_box" || o.random_box)) emit_value(n, key, o.seed);
  }
  return n;
}

MeasurementNoiseOptions parse_noise(ConfigNode n) {
  MeasurementNoiseOptions o;
  n.read_enum("type", o.type, kMeasurementNoiseTypeNames);
  const bool gaussian = o.type == MeasurementNoiseType::gaussian;
  reject_foreign_keys(n, {"sigma", "rate"}, {gaussian ? "sigma" : "rate"},
                      std::string("noise type '") + enum_name(o.type, kMeasurementNoiseTypeNames) + "'");
  if (gaussian) {
    n.read("sigma", o.sigma);
    n.check_range("sigma", o.sigma, 0.0, 10.0);
  } else {
    n.read("rate", o.rate);
    if (!(o.rate > 0.0 && o.rate <= 1e9))
      n.fail("rate", "must lie in (0, 1e9] (expected photon count of a white pixel), found " + format_double(o.rate));
  }
  n.finish();
  return o;
}

YAML::Node emit_noise(const MeasurementNoiseOptions& o) {
  YAML::Node n;
  emit_enum(n, "type", o.type, kMeasurementNoiseTypeNames);
  if (o.type == MeasurementNoiseType::gaussian) emit_value(n, "sigma", o.sigma);
  if (o.type == MeasurementNoiseType::poisson) emit_value(n, "rate", o.rate);
  return n;
}

}  // namespace

std::vector<std::string> operator_keys(const std::string& operator_name) {
  if (operator_name == "inpaint_box") return {"box_size", "box_top", "box_left", "random_box", "seed"};
  if (operator_name == "inpaint_random") return {"keep_fraction", "seed"};
  if (operator_name == "gaussian_blur") return {"kernel_size", "blur_sigma"};
  if (operator_name == "motion_blur") return {"kernel_size", "intensity", "seed"};
  if (operator_name == "super_resolution") return {"factor"};
  if (operator_name == "denoise") return {};
  throw ConfigError("unknown operator '" + operator_name + "'; valid operators: " + operator_names());
}

RestoreTask parse_restore_task(ConfigNode& root) {
  RestoreTask t;
  if (!root.has("operator")) root.fail("operator", "missing required section (e.g. operator: {name: inpaint_box})");
  t.op = parse_operator(root.child("operator"));
  t.noise = parse_noise(root.child("noise"));
  root.read_enum("method", t.dps.method, kDpsMethodNames);
  root.read("zeta", t.dps.zeta);
  if (!(t.dps.zeta > 0.0 && t.dps.zeta <= 1e6))
    root.fail("zeta", "must lie in (0, 1e6], found " + format_double(t.dps.zeta));
  root.read("normalize_zeta", t.dps.normalize_zeta);
  root.read("clip_denoised", t.dps.clip_denoised);
  root.check_range("clip_denoised", t.dps.clip_denoised, 0.0, 1000.0);
  root.read("steps", t.steps);
  root.check_int_range("steps", t.steps, 1, 100000);
  root.read_enum("spacing", t.spacing, kTimestepSpacingNames);
  root.read("class", t.class_label);
  if (t.class_label < -1) root.fail("class", "must be -1 (unconditional) or a class label >= 0");
  root.read("cfg", t.cfg);
  root.check_range("cfg", t.cfg, 0.0, 100.0);
  if (t.class_label == -1 && t.cfg != 1.0)
    root.fail("cfg", "classifier-free guidance needs a class; set class to a label or leave cfg at 1");
  root.finish();
  return t;
}

YAML::Node emit_restore_task(const RestoreTask& t) {
  YAML::Node n;
  n["operator"] = emit_operator(t.op);
  n["noise"] = emit_noise(t.noise);
  emit_enum(n, "method", t.dps.method, kDpsMethodNames);
  emit_value(n, "zeta", t.dps.zeta);
  emit_value(n, "normalize_zeta", t.dps.normalize_zeta);
  emit_value(n, "clip_denoised", t.dps.clip_denoised);
  emit_value(n, "steps", t.steps);
  emit_enum(n, "spacing", t.spacing, kTimestepSpacingNames);
  emit_value(n, "class", t.class_label);
  emit_value(n, "cfg", t.cfg);
  return n;
}

RestoreTask load_restore_task(const std::string& path, const std::vector<std::string>& overrides) {
  ConfigNode root = ConfigNode::load_file(path);
  for (const auto& o : overrides) root.apply_override(o);
  return parse_restore_task(root);
}

}  // namespace diffuse
