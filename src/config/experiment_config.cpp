#include "diffuse/config/experiment_config.h"

namespace diffuse {

namespace {

// Rules across sections.
void check_experiment(const ExperimentConfig& c, const OptionFail& fail) {
  if (c.distill.method != DistillMethod::none) {
    if (c.model.arch == ModelArch::classifier)
      fail("distill", "distils diffusion models; model.arch is 'classifier'");
    if (c.train.cuda_graph)
      fail("distill", "consistency distillation runs eagerly; set train.cuda_graph false");
  }
  if (c.diffusion.schedule == ScheduleKind::edm && c.diffusion.prediction != Prediction::edm)
    fail("diffusion",
         "schedule 'edm' needs prediction 'edm' (VP predictions eps/v/x0 are defined on the "
         "discrete "
         "VP grid)");
  if (c.model.learn_sigma && !is_vp_schedule(c.diffusion.schedule))
    fail(
        "model",
        "learn_sigma needs a VP schedule (the learned variance interpolates between β and β̃ of the "
        "discrete grid)");
}

OptionSchema<ExperimentConfig> make_schema() {
  using C = ExperimentConfig;
  OptionSchema<C> s;
  s.field("name", &C::name, "run name").after_read([](ConfigNode&, C& c) {
    c.run_dir = "runs/" + c.name;
  });
  s.field("run_dir", &C::run_dir, "output folder (must not hold another run; see `--overwrite`)")
      .shown_default("runs/<name>");
  s.section("data", &C::data, data_options_schema());
  s.section("model", &C::model, model_options_schema());
  s.section("diffusion", &C::diffusion, diffusion_options_schema());
  s.section("classifier", &C::classifier, classifier_options_schema()).applies([](const C& c) {
    return c.model.arch == ModelArch::classifier ? std::string()
                                                 : "applies to model.arch 'classifier' only";
  });
  s.section("train", &C::train, train_options_schema());
  s.section("distill", &C::distill, distill_options_schema()).emit_if([](const C& c) {
    return c.distill.method != DistillMethod::none;
  });
  s.rule(check_experiment);
  return s;
}

}  // namespace

const OptionSchema<ExperimentConfig>& experiment_config_schema() {
  return built_once<make_schema>();
}

ExperimentConfig parse_experiment_config(ConfigNode& root) {
  return experiment_config_schema().parse(root);
}

ExperimentConfig load_experiment_config(const std::string& path,
                                        const std::vector<std::string>& overrides) {
  return experiment_config_schema().load(path, overrides);
}

YAML::Node emit_experiment_config(const ExperimentConfig& config) {
  return experiment_config_schema().emit(config);
}

}  // namespace diffuse
