// Strict config reading: unknown keys, wrong types, missing keys, --set overrides, and the
// parse → emit → parse round trip.
#include <gtest/gtest.h>

#include <filesystem>

#include "diffuse/config/experiment_config.h"
#include "diffuse/core/error.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  test::TempDir dir;
  const std::string path = dir.file("x.yaml");
  test::write_file(path, yaml);
  try {
    load_experiment_config(path, overrides);
  } catch (const ConfigError& e) {
    std::string message = e.what();
    // Replace the temp path so expectations read naturally.
    auto pos = message.find(path);
    if (pos != std::string::npos) message.replace(pos, path.size(), "x.yaml");
    return message;
  }
  return "";
}

}  // namespace

TEST(Config, DefaultsWhenEmpty) {
  ConfigNode root = ConfigNode::load_string("", "<empty>");
  ExperimentConfig c = parse_experiment_config(root);
  EXPECT_EQ(c.train.batch_size, 128);
  EXPECT_EQ(c.diffusion.prediction, Prediction::eps);
  EXPECT_EQ(c.data.type, DatasetType::idx);
}

TEST(Config, UnknownKeyNamesLocationPathAndValidKeys) {
  const std::string m = error_of("train:\n  steps: 10\n  lerning_rate: 0.1\n");
  EXPECT_NE(m.find("x.yaml:3:3"), std::string::npos) << m;
  EXPECT_NE(m.find("train.lerning_rate"), std::string::npos) << m;
  EXPECT_NE(m.find("lr"), std::string::npos) << m;
  EXPECT_NE(m.find("batch_size"), std::string::npos) << m;
}

TEST(Config, UnknownTopLevelKey) {
  const std::string m = error_of("modle:\n  arch: unet\n");
  EXPECT_NE(m.find("x.yaml:1:1"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown key 'modle'"), std::string::npos) << m;
  EXPECT_NE(m.find("model"), std::string::npos) << m;
}

TEST(Config, WrongTypeNamesExpectedAndFound) {
  std::string m = error_of("train:\n  lr: fast\n");
  EXPECT_NE(m.find("train.lr: expected a finite number, found 'fast'"), std::string::npos) << m;
  m = error_of("train:\n  steps: 1.5\n");
  EXPECT_NE(m.find("expected an integer, found '1.5'"), std::string::npos) << m;
  m = error_of("data:\n  hflip: maybe\n");
  EXPECT_NE(m.find("expected true or false, found 'maybe'"), std::string::npos) << m;
  m = error_of("model:\n  unet:\n    channel_mult: 3\n");
  EXPECT_NE(m.find("model.unet.channel_mult: expected a list of integers, found '3'"), std::string::npos) << m;
  m = error_of("train: 5\n");
  EXPECT_NE(m.find("train: expected a mapping of keys, found '5'"), std::string::npos) << m;
}

TEST(Config, BadEnumListsValidValues) {
  const std::string m = error_of("diffusion:\n  prediction: noise\n");
  EXPECT_NE(m.find("x.yaml:2:3"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown value 'noise'; valid values: eps, v, x0, edm"), std::string::npos) << m;
}

TEST(Config, RangeChecks) {
  EXPECT_NE(error_of("train:\n  batch_size: 0\n").find("train.batch_size: must be an integer in [1, 65536], found 0"), std::string::npos);
  EXPECT_NE(error_of("diffusion:\n  p_uncond: 1.5\n").find("diffusion.p_uncond: must lie in"), std::string::npos);
  EXPECT_NE(error_of("model:\n  preset: unet_huge\n").find("valid presets: ddpm_cifar10"), std::string::npos);
}

TEST(Config, MissingRequiredKey) {
  ConfigNode root = ConfigNode::load_string("a: 1\n", "<s>");
  int64_t b = 0;
  try {
    root.require("b", b);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("missing required key 'b'"), std::string::npos) << e.what();
  }
}

TEST(Config, SetOverridesAndValidates) {
  test::TempDir dir;
  const std::string path = dir.file("x.yaml");
  test::write_file(path, "train:\n  steps: 10\n");
  ExperimentConfig c = load_experiment_config(
      path, {"train.steps=20", "model.unet.channel_mult=[1,2]", "diffusion.prediction=v"});
  EXPECT_EQ(c.train.steps, 20);
  EXPECT_EQ(c.model.unet.channel_mult, (std::vector<int>{1, 2}));
  EXPECT_EQ(c.diffusion.prediction, Prediction::v);

  std::string m = error_of("train:\n  steps: 10\n", {"train.stepz=3"});
  EXPECT_NE(m.find("--set train.stepz: unknown key 'train.stepz'"), std::string::npos) << m;
  m = error_of("train:\n  steps: 10\n", {"train.steps=many"});
  EXPECT_NE(m.find("--set train.steps: train.steps: expected an integer, found 'many'"), std::string::npos) << m;
  m = error_of("train:\n  steps: 10\n", {"train.steps.x=1"});
  EXPECT_NE(m.find("'train.steps' is a value, not a section"), std::string::npos) << m;
  m = error_of("", {"novalue"});
  EXPECT_NE(m.find("expected key.path=value"), std::string::npos) << m;
}

TEST(Config, InvalidYamlNamesLine) {
  const std::string m = error_of("train:\n  steps: [1, 2\n");
  EXPECT_NE(m.find("x.yaml:"), std::string::npos) << m;
  EXPECT_NE(m.find("invalid YAML"), std::string::npos) << m;
}

TEST(Config, ParseEmitParseIsIdentity) {
  test::TempDir dir;
  const std::string path = dir.file("x.yaml");
  test::write_file(path,
                   "name: t\n"
                   "model:\n  preset: ddpm_cifar10\n  unet:\n    dropout: 0.15\n"
                   "diffusion:\n  schedule: vp_cosine\n  prediction: v\n  weighting: min_snr\n"
                   "train:\n  lr: 0.0002\n  betas: [0.9, 0.99]\n  sample:\n    cfg: 3.5\n");
  const ExperimentConfig first = load_experiment_config(path);
  EXPECT_DOUBLE_EQ(first.model.unet.dropout, 0.15);
  EXPECT_EQ(first.model.unet.base_channels, 128);
  const std::string emitted = to_yaml_string(emit_experiment_config(first));
  ConfigNode again = ConfigNode::load_string(emitted, "<emitted>");
  const ExperimentConfig second = parse_experiment_config(again);
  EXPECT_EQ(to_yaml_string(emit_experiment_config(second)), emitted);
  EXPECT_EQ(second.train.lr, 0.0002);
  EXPECT_EQ(second.train.betas, (std::vector<double>{0.9, 0.99}));
  EXPECT_EQ(second.diffusion.schedule, ScheduleKind::vp_cosine);
  EXPECT_EQ(second.train.sample.cfg, 3.5);
  EXPECT_NE(emitted.find("lr: 0.0002"), std::string::npos) << emitted;
}

TEST(Config, FormatDoubleIsShortestRoundTrip) {
  for (double v : {0.1, 2e-4, 1e-4, 0.9999, 80.0, 1.0 / 3.0, 4.03583e-5}) {
    const std::string s = format_double(v);
    EXPECT_EQ(std::stod(s), v) << s;
  }
  EXPECT_EQ(format_double(0.1), "0.1");
  EXPECT_EQ(format_double(80.0), "80.0");
}

TEST(Config, EveryShippedConfigParsesAndRoundTrips) {
  // configs/*.yaml are what users start from: each must load strictly, resolve its model
  // preset, and survive parse → emit → parse unchanged.
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::source_dir() / "configs")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    const ExperimentConfig first = load_experiment_config(entry.path().string());
    const std::string emitted = to_yaml_string(emit_experiment_config(first));
    ConfigNode again = ConfigNode::load_string(emitted, "<emitted>");
    EXPECT_EQ(to_yaml_string(emit_experiment_config(parse_experiment_config(again))), emitted);
    ++count;
  }
  EXPECT_GE(count, 8);
}

TEST(Config, EachScheduleBringsItsDefaults) {
  auto parse = [](const std::string& yaml) {
    ConfigNode root = ConfigNode::load_string(yaml, "<string>");
    return parse_experiment_config(root).diffusion;
  };
  const auto ve = parse("diffusion:\n  schedule: ve\n");
  EXPECT_EQ(ve.sigma_distribution, SigmaDistribution::log_uniform);
  EXPECT_EQ(ve.sigma_min, 0.01);
  EXPECT_EQ(ve.sigma_max, 50.0);
  EXPECT_EQ(ve.prediction, Prediction::eps);
  const auto flow = parse("diffusion:\n  schedule: flow\n");
  EXPECT_EQ(flow.prediction, Prediction::flow);
  EXPECT_EQ(flow.sigma_distribution, SigmaDistribution::uniform_t);
  EXPECT_EQ(flow.p_mean, 0.0);
  EXPECT_EQ(flow.p_std, 1.0);
  EXPECT_EQ(parse("diffusion:\n  schedule: edm\n").sigma_distribution, SigmaDistribution::log_normal);
  EXPECT_EQ(parse("").sigma_distribution, SigmaDistribution::grid);
  // Explicit keys win over the schedule's defaults.
  EXPECT_EQ(parse("diffusion:\n  schedule: flow\n  sigma_distribution: log_normal\n  shift: 3\n").shift, 3.0);
}

TEST(Config, CombinationsThatAreNotDefinedAreErrors) {
  EXPECT_CONTAINS(error_of("diffusion:\n  schedule: ve\n  sigma_distribution: grid\n"), "has none");
  EXPECT_CONTAINS(error_of("diffusion:\n  sigma_distribution: uniform_t\n"), "needs schedule 'flow'");
  EXPECT_CONTAINS(error_of("diffusion:\n  schedule: ve\n  shift: 2\n"), "applies to schedule 'flow' only");
  EXPECT_CONTAINS(error_of("diffusion:\n  schedule: edm\n  prediction: flow\n"), "needs prediction 'edm'");
  EXPECT_CONTAINS(error_of("model:\n  learn_sigma: true\ndiffusion:\n  schedule: flow\n"), "needs a VP schedule");
  EXPECT_CONTAINS(error_of("classifier:\n  noise: none\n"), "applies to model.arch 'classifier' only");
  EXPECT_CONTAINS(error_of("model:\n  arch: classifier\n  preset: dit_s_2\n"), "takes a UNet preset");
  EXPECT_CONTAINS(error_of("model:\n  arch: classifier\nclassifier:\n  noise: some\n"), "valid values");
  EXPECT_CONTAINS(error_of("distill:\n  method: consistency\n"), "needs the teacher's checkpoint");
  EXPECT_CONTAINS(error_of("distill:\n  method: consistency\n  teacher: t.pt\n  n_start: 20\n  n_end: 10\n"),
                  "n_end");
  EXPECT_CONTAINS(error_of("distill:\n  method: consistency\n  teacher: t.pt\ntrain:\n  cuda_graph: true\n"),
                  "runs eagerly");
  EXPECT_CONTAINS(error_of("data:\n  type: couplings\n  hflip: true\n"), "not the noise it is coupled to");
}

TEST(Config, DistillSectionRoundTripsAndIsLeftOutWhenUnused) {
  ConfigNode root = ConfigNode::load_string(
      "diffusion:\n  schedule: flow\ndistill:\n  method: consistency\n  teacher: t.pt\n  solver: euler\n"
      "  distance: l2\n  n_start: 10\n  n_end: 40\n  mu0: 0.9\ntrain:\n  init_from: init.pt\n",
      "<string>");
  const ExperimentConfig c = parse_experiment_config(root);
  EXPECT_EQ(c.distill.method, DistillMethod::consistency);
  EXPECT_EQ(c.distill.solver, TeacherSolver::euler);
  EXPECT_EQ(c.distill.n_end, 40);
  EXPECT_EQ(c.train.init_from, "init.pt");
  const std::string emitted = to_yaml_string(emit_experiment_config(c));
  ConfigNode again = ConfigNode::load_string(emitted, "<emitted>");
  EXPECT_EQ(to_yaml_string(emit_experiment_config(parse_experiment_config(again))), emitted);
  EXPECT_CONTAINS(emitted, "distance: l2");
  ConfigNode plain = ConfigNode::load_string("name: t\n", "<string>");
  EXPECT_EQ(to_yaml_string(emit_experiment_config(parse_experiment_config(plain))).find("distill"), std::string::npos);
}

TEST(Config, ClassifierKeepsItsArchWithAUNetPresetAndRoundTrips) {
  ConfigNode root = ConfigNode::load_string(
      "model:\n  arch: classifier\n  preset: unet_small\nclassifier:\n  noise: none\n  eval_sigmas: [0, 0.5]\n",
      "<string>");
  const ExperimentConfig c = parse_experiment_config(root);
  EXPECT_EQ(c.model.arch, ModelArch::classifier);
  EXPECT_EQ(c.model.unet.base_channels, 32);
  EXPECT_EQ(c.classifier.noise, ClassifierNoise::none);
  const std::string emitted = to_yaml_string(emit_experiment_config(c));
  EXPECT_CONTAINS(emitted, "classifier:");
  ConfigNode again = ConfigNode::load_string(emitted, "<emitted>");
  EXPECT_EQ(to_yaml_string(emit_experiment_config(parse_experiment_config(again))), emitted);
}

namespace {

// parse(emit(parse(yaml))).
ExperimentConfig reparsed(const std::string& yaml) {
  ConfigNode node = ConfigNode::load_string(yaml, "<string>");
  ConfigNode again = ConfigNode::load_string(to_yaml_string(emit_experiment_config(parse_experiment_config(node))), "<emitted>");
  return parse_experiment_config(again);
}

}  // namespace

// The keys that make our networks match diffusers' survive parse, emit and parse.
TEST(Config, InteropOptionsRoundTrip) {
  const ModelOptions m =
      reparsed("model:\n  timestep:\n    order: sin_cos\n    freq_shift: 1\n  unet:\n    norm_eps: 0.000001\n"
               "    downsample_padding: bottom_right\n    middle_attention_norm: false\n")
          .model;
  EXPECT_EQ(m.timestep.order, TimestepOrder::sin_cos);
  EXPECT_EQ(m.timestep.freq_shift, 1);
  EXPECT_EQ(m.unet.norm_eps, 1e-6);
  EXPECT_EQ(m.unet.downsample_padding, DownsamplePadding::bottom_right);
  EXPECT_FALSE(m.unet.middle_attention_norm);
  EXPECT_EQ(reparsed("model:\n  arch: dit\n  dit:\n    mlp_norm_eps: 0.00001\n").model.dit.mlp_norm_eps, 1e-5);
  EXPECT_CONTAINS(error_of("model:\n  unet:\n    resblock_updown: true\n    downsample_padding: bottom_right\n"),
                  "applies to conv downsampling");
  EXPECT_CONTAINS(error_of("model:\n  timestep:\n    freq_shift: 2\n"), "freq_shift");
}
