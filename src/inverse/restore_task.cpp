#include "diffuse/inverse/restore_task.h"

namespace diffuse {
namespace {

OptionSchema<RestoreTask> make_schema() {
  using T = RestoreTask;
  OptionSchema<T> s;
  s.section("operator", &T::op, operator_options_schema())
      .required("missing required section (e.g. operator: {name: inpaint_box})");
  s.section("noise", &T::noise, measurement_noise_schema());
  s.flatten(&T::dps, dps_options_schema());
  s.field("steps", &T::steps, "sampling steps", checks::int_range<int>(1, 100000));
  s.choice("spacing", &T::spacing, kTimestepSpacingNames,
           "the σ grid of the steps (as `diffuse sample --spacing`)");
  s.field("class", &T::class_label, "-1: unconditional; else the class label to restore with",
          checks::custom<int64_t>("-1 or ≥ 0", [](const int64_t& v) {
            return v < -1 ? std::string("must be -1 (unconditional) or a class label >= 0")
                          : std::string();
          }));
  s.field("cfg", &T::cfg, "classifier-free guidance weight (1 = plain conditional; needs a class)",
          checks::range(0.0, 100.0));
  s.rule([](const T& t, const OptionFail& fail) {
    if (t.class_label == -1 && t.cfg != 1.0)
      fail("cfg", "classifier-free guidance needs a class; set class to a label or leave cfg at 1");
  });
  return s;
}

}  // namespace

const OptionSchema<RestoreTask>& restore_task_schema() { return built_once<make_schema>(); }

RestoreTask parse_restore_task(ConfigNode& root) { return restore_task_schema().parse(root); }

YAML::Node emit_restore_task(const RestoreTask& task) { return restore_task_schema().emit(task); }

RestoreTask load_restore_task(const std::string& path, const std::vector<std::string>& overrides) {
  return restore_task_schema().load(path, overrides);
}

}  // namespace diffuse
