// The option schemas: one description per struct drives parse, emit, C++ validation and the
// README's config reference, so these tests pin the places where they could disagree.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "diffuse/config/config_reference.h"
#include "diffuse/config/experiment_config.h"
#include "diffuse/core/error.h"
#include "diffuse/distill/score_distillation.h"
#include "diffuse/inverse/operator.h"
#include "diffuse/inverse/restore_task.h"
#include "support/expect_text.h"
#include "support/run_command.h"
#include "support/test_paths.h"

namespace diffuse {
namespace {

// The dotted paths of the scalar and list leaves of an emitted mapping.
std::vector<std::string> leaf_keys(const YAML::Node& emitted) {
  std::vector<std::string> keys;
  std::function<void(const YAML::Node&, const std::string&)> walk = [&](const YAML::Node& n,
                                                                        const std::string& path) {
    for (const auto& kv : n) {
      const std::string key = path.empty() ? kv.first.Scalar() : path + "." + kv.first.Scalar();
      if (kv.second.IsMap()) {
        walk(kv.second, key);
      } else {
        keys.push_back(key);
      }
    }
  };
  walk(emitted, "");
  return keys;
}

TEST(OptionSchema, ReadmeReferenceIsTheGeneratedOne) {
  const std::string path = (test::source_dir() / "README.md").string();
  const std::string readme = test::read_file(path);
  ASSERT_FALSE(readme.empty()) << path;
  EXPECT_EQ(with_config_reference(readme, path), readme)
      << "README.md's config reference is stale: run `diffuse config --reference --update "
         "README.md`";
}

TEST(OptionSchema, ReferenceUpdateNeedsTheMarkers) {
  EXPECT_CONTAINS(
      test::error_message<ConfigError>([] { with_config_reference("# no markers\n", "X.md"); }),
      "X.md: expected the markers");
  const std::string stale =
      std::string("a\n") + kConfigReferenceBegin + "\nold table\n" + kConfigReferenceEnd + "\nb\n";
  const std::string updated = with_config_reference(stale, "X.md");
  EXPECT_EQ(updated.find("old table"), std::string::npos);
  EXPECT_CONTAINS(updated, "| `train.lr` | `0.0002` | (0, 10] |");
  EXPECT_EQ(with_config_reference(updated, "X.md"), updated);  // idempotent
}

// Every key the reference lists is one the parser accepts and the emitter writes: a config
// that uses every section emits exactly the reference's keys.
TEST(OptionSchema, ReferenceKeysAreTheEmittedKeys) {
  ExperimentConfig c;
  c.model.arch = ModelArch::classifier;
  c.distill.method = DistillMethod::consistency;
  c.distill.teacher = "t.pt";
  std::vector<std::string> flat = leaf_keys(emit_experiment_config(c));
  std::vector<std::string> listed;
  for (const auto& row : experiment_config_schema().reference(ExperimentConfig{}, ""))
    if (row.key.rfind("model.dit.", 0) != 0)
      listed.push_back(row.key);  // a classifier has no DiT keys
  std::sort(flat.begin(), flat.end());
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(flat, listed);
}

// Each method and generator variant emits exactly its own keys, and together they emit every
// key of the score-distillation reference; a key of another variant is refused by name.
TEST(OptionSchema, ScoreDistillationVariantsEmitTheReferenceKeys) {
  std::vector<std::string> emitted;
  using M = ScoreDistillationMethod;
  for (const auto& [method, kind, encoding, network] :
       std::vector<std::tuple<M, GeneratorKind, FieldEncoding, ParticleScoreNetwork>>{
           {M::sds, GeneratorKind::pixels, FieldEncoding::fourier, ParticleScoreNetwork::lora},
           {M::vsd, GeneratorKind::field, FieldEncoding::fourier, ParticleScoreNetwork::lora},
           {M::vsd, GeneratorKind::field, FieldEncoding::siren, ParticleScoreNetwork::copy},
           {M::sdi, GeneratorKind::volume, FieldEncoding::fourier, ParticleScoreNetwork::lora}}) {
    ScoreDistillationOptions o;
    o.method = method;
    o.generator.kind = kind;
    o.generator.field.encoding = encoding;
    o.vsd.network = network;
    const std::string yaml = to_yaml_string(emit_score_distillation(o));
    const auto keys = leaf_keys(emit_score_distillation(o));
    emitted.insert(emitted.end(), keys.begin(), keys.end());
    ConfigNode again = ConfigNode::load_string(yaml, "<emitted>");
    EXPECT_EQ(to_yaml_string(emit_score_distillation(parse_score_distillation(again))), yaml)
        << yaml;
  }
  ScoreDistillationOptions with_classes;
  with_classes.classes = {1, 2};
  for (const auto& key : leaf_keys(emit_score_distillation(with_classes))) emitted.push_back(key);
  std::sort(emitted.begin(), emitted.end());
  emitted.erase(std::unique(emitted.begin(), emitted.end()), emitted.end());
  std::vector<std::string> listed;
  for (const auto& row : score_distillation_schema().reference(ScoreDistillationOptions{}, ""))
    listed.push_back(row.key);
  std::sort(listed.begin(), listed.end());
  EXPECT_EQ(emitted, listed);

  const auto error_of = [](const std::string& text) {
    return test::error_message<ConfigError>([&] {
      ConfigNode n = ConfigNode::load_string(text, "<task>");
      parse_score_distillation(n);
    });
  };
  EXPECT_CONTAINS(error_of("method: sds\nsdi: {tau_max: 0.1}\n"),
                  "sdi: applies to method 'sdi' only (method is 'sds')");
  EXPECT_CONTAINS(
      error_of("method: sds\ngenerator: {kind: field, field: {encoding: siren, features: 8}}\n"),
      "generator.field.features: applies to encoding 'fourier' only (encoding is 'siren')");
  GeneratorOptions g;
  g.kind = GeneratorKind::volume;
  g.volume.grid = 1;
  EXPECT_CONTAINS(test::error_message<ConfigError>([&] {
                    make_image_generator(g, {1, 1, 4, 4}, {0});
                  }),
                  "generator.volume.grid: must be an integer in [2, 256], found 1");
}

TEST(OptionSchema, DefaultsOfOtherSchedulesAreShown) {
  const std::string md = config_reference_markdown();
  EXPECT_CONTAINS(md, "| `diffusion.sigma_max` | `80 (ve: 50, flow: 999)` |");
  EXPECT_CONTAINS(md, "| `diffusion.prediction` | `eps (edm: edm, flow: flow)` |");
  EXPECT_CONTAINS(md, "| `run_dir` | `runs/<name>` |");
  EXPECT_CONTAINS(md, "| `operator.name` | `required` |");
}

// A struct built in C++ is held to the ranges the parser applies, with the key path named.
TEST(OptionSchema, ValidateNamesTheKeyPath) {
  UNetOptions u;
  u.num_heads = 0;
  EXPECT_CONTAINS(
      test::error_message<ConfigError>([&] { unet_options_schema().validate(u, "model.unet"); }),
      "model.unet.num_heads: must be an integer in [1, 1024], found 0");
  DiffusionOptions d;
  d.sigma_max = d.sigma_min;
  EXPECT_CONTAINS(test::error_message<ConfigError>(
                      [&] { diffusion_options_schema().validate(d, "diffusion"); }),
                  "diffusion.sigma_max: must lie in (sigma_min = 0.002, 1e6]");
  ExperimentConfig c;
  c.train.eval_every = 10;
  EXPECT_CONTAINS(
      test::error_message<ConfigError>([&] { experiment_config_schema().validate(c, ""); }),
      "train.eval.features: train.eval_every 10 needs a feature network");
  EXPECT_NO_THROW(experiment_config_schema().validate(ExperimentConfig{}, ""));
}

// The operator keys come from the operator table: each operator's keys are the schema's keys
// that apply to it, and a key of another operator names this one's.
TEST(OptionSchema, OperatorKeysComeFromTheTable) {
  for (const auto& entry : operator_table()) {
    OperatorOptions o;
    o.name = entry.name;
    o.random_box = true;  // inpaint_box then reads seed and not box_top/box_left
    YAML::Node emitted = operator_options_schema().emit(o);
    std::vector<std::string> keys;
    for (const auto& kv : emitted)
      if (kv.first.Scalar() != "name") keys.push_back(kv.first.Scalar());
    std::vector<std::string> expected = entry.keys;
    if (o.name == std::string("inpaint_box"))
      expected.erase(
          std::remove_if(expected.begin(), expected.end(),
                         [](const std::string& k) { return k == "box_top" || k == "box_left"; }),
          expected.end());
    std::sort(keys.begin(), keys.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(keys, expected) << entry.name;
  }
  ConfigNode root = ConfigNode::load_string("operator: {name: denoise, factor: 2}\n", "<task>");
  EXPECT_CONTAINS(test::error_message<ConfigError>([&] { parse_restore_task(root); }),
                  "operator.factor: not used by operator 'denoise' (its keys: none)");
}

TEST(OptionSchema, ValueTextIsTheReadmeSpelling) {
  EXPECT_EQ(option_value_text(1e-5), "1e-5");
  EXPECT_EQ(option_value_text(2e-4), "0.0002");
  EXPECT_EQ(option_value_text(1e12), "1e12");
  EXPECT_EQ(option_value_text(80.0), "80");
  EXPECT_EQ(option_value_text(std::vector<double>{0.9, 0.999}), "[0.9, 0.999]");
}

TEST(OptionSchema, ConfigCommandPrintsTheReference) {
  const test::CommandResult r = test::run_diffuse_forked({"config", "--reference"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, config_reference_markdown());
  const test::CommandResult bad = test::run_diffuse_forked({"config"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_CONTAINS(bad.err, "config: expected --reference");
}

}  // namespace
}  // namespace diffuse
