// `diffuse train` and `diffuse sample` for the flow and VE schedules and the noise-conditional
// classifier on tiny data: the loss falls, the new samplers run from the CLI with their flags,
// classifier guidance samples, and misuse is a one-line error. `diffuse eval` and
// train.eval_every use these runs too (the classifier as feature network).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <numeric>
#include <regex>
#include <stdexcept>

#include "diffuse/distributed/communicator.h"
#include "diffuse/io/image_io.h"
#include "support/dataset_files.h"
#include "support/expect_text.h"
#include "support/run_command.h"
#include "support/run_metrics.h"
#include "support/test_paths.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

// 8×8 images of 10 classes; the base config of every run, completed by per-run keys.
constexpr const char* kBase = R"(data:
  type: idx
  path: @IDX@
  num_workers: 1
model:
  arch: @ARCH@
  unet:
    base_channels: 16
    channel_mult: [1, 2]
    num_res_blocks: 1
    attention_resolutions: []
    num_groups: 8
train:
  steps: 40
  batch_size: 8
  lr: 0.002
  warmup_steps: 0
  precision: fp32
  device: cpu
  log_every: 5
  sample_every: 0
  ckpt_every: 40
  ema_decay: 0.9
)";

double mean_of(const std::vector<double>& v, size_t begin, size_t end) {
  return std::accumulate(v.begin() + static_cast<long>(begin), v.begin() + static_cast<long>(end), 0.0) /
         static_cast<double>(end - begin);
}

class FormalismsCli : public ::testing::Test {
 protected:
  struct Shared {
    test::TempDir dir;
    std::map<std::string, std::string> checkpoints;
  };

  static void SetUpTestSuite() {
    shared_ = new Shared;
    const std::string idx = shared_->dir.file("idx");
    test::write_idx_split(idx, "train", test::pattern_images(40, 8, 8), test::pattern_labels(40), false);
    test::write_idx_split(idx, "t10k", test::pattern_images(20, 8, 8), test::pattern_labels(20), false);
    // For the classifier: the brightness tells the class (24 grey levels per class).
    const auto labels = test::pattern_labels(40);
    const auto images = (labels.view({-1, 1, 1}) * 24 + test::pattern_images(40, 8, 8) % 8).to(torch::kUInt8);
    const std::string graded = shared_->dir.file("graded");
    test::write_idx_split(graded, "train", images, labels, false);
    test::write_idx_split(graded, "t10k", images.narrow(0, 0, 20), labels.narrow(0, 0, 20), false);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }

  // Trains run `name` once (arch unet or classifier, plus YAML `extra` and --set `sets`); its
  // last checkpoint.
  static std::string trained(const std::string& name, const std::string& arch, const std::string& extra,
                             const std::string& data = "idx", const std::vector<std::string>& sets = {}) {
    auto& s = *shared_;
    if (const auto it = s.checkpoints.find(name); it != s.checkpoints.end()) return it->second;
    std::string text = kBase;
    text.replace(text.find("@IDX@"), 5, s.dir.file(data));
    text.replace(text.find("@ARCH@"), 6, arch);
    const std::string config = s.dir.file(name + ".yaml");
    test::write_file(config, text + extra);
    std::vector<std::string> args{"train", "--config", config, "--set", "run_dir=" + s.dir.file(name), "--threads", "1"};
    for (const auto& set : sets) args.insert(args.end(), {"--set", set});
    const auto r = test::run_diffuse(args);
    if (r.exit_code != 0) throw std::runtime_error("training run '" + name + "' failed: " + r.err);
    return s.checkpoints[name] = s.dir.file(name) + "/ckpt/last.pt";
  }
  static std::string flow() {
    return trained("flow", "unet", "diffusion:\n  schedule: flow\n  sigma_distribution: log_normal\n  p_uncond: 0.2\n");
  }
  static std::string ve() { return trained("ve", "unet", "diffusion:\n  schedule: ve\n"); }
  static std::string classifier() {
    // Noisy training over σ in [0.01, 0.2] on images whose brightness is their class.
    return trained("classifier", "classifier",
                   "diffusion:\n  schedule: ve\n  sigma_min: 0.01\n  sigma_max: 0.2\n"
                   "classifier:\n  eval_sigmas: [0, 0.5]\n  eval_batches: 2\n", "graded");
  }
  static fs::path run_of(const std::string& ckpt) { return fs::path(ckpt).parent_path().parent_path(); }

  static test::CommandResult sample(std::vector<std::string> args) {
    args.insert(args.begin(), "sample");
    args.insert(args.end(), {"--device", "cpu"});
    return test::run_diffuse(args);
  }

  static Shared* shared_;
  test::TempDir out;
};

FormalismsCli::Shared* FormalismsCli::shared_ = nullptr;

void expect_loss_falls(const fs::path& run) {
  const auto loss = test::metrics_values(run / "metrics.jsonl", "loss");
  ASSERT_EQ(loss.size(), 8u);
  std::printf("%s: loss %.4f ... %.4f\n", run.filename().c_str(), loss.front(), loss.back());
  EXPECT_LT(mean_of(loss, 5, 8), 0.8 * mean_of(loss, 0, 3));
}

}  // namespace

TEST_F(FormalismsCli, FlowTrainsAndSamples) {
  expect_loss_falls(run_of(flow()));
  for (const char* sampler : {"euler", "heun"}) {
    const std::string dir = out.file(sampler);
    const auto r = sample({"--checkpoint", flow(), "--sampler", sampler, "--steps", "4", "--cfg", "2",
                           "--seeds", "0-3", "--out", dir});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/grid" + image_extension(1)));
    // The flow schedule's own spacing, uniform in t.
    EXPECT_CONTAINS(test::read_file(dir + "/sampling.yaml"), "spacing: linear_t");
  }
}

TEST_F(FormalismsCli, VeTrainsAndSamplesWithScoreSamplers) {
  expect_loss_falls(run_of(ve()));
  const std::vector<std::vector<std::string>> runs{
      {"--sampler", "sde_ve", "--steps", "6"},
      {"--sampler", "pc", "--steps", "4", "--predictor", "sde_ve", "--corrector-steps", "2", "--snr", "0.1"},
      {"--sampler", "langevin", "--steps", "3", "--langevin-steps", "4", "--langevin-eps", "1e-4"},
  };
  for (const auto& flags : runs) {
    SCOPED_TRACE(flags[1]);
    const std::string dir = out.file(flags[1]);
    std::vector<std::string> args{"--checkpoint", ve(), "--seeds", "0-2", "--out", dir};
    args.insert(args.end(), flags.begin(), flags.end());
    const auto r = sample(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string record = test::read_file(dir + "/sampling.yaml");
    EXPECT_CONTAINS(record, "sampler: " + flags[1]);
    EXPECT_CONTAINS(record, "spacing: geometric");
  }
  const std::string record = test::read_file(out.file("pc") + "/sampling.yaml");
  EXPECT_CONTAINS(record, "corrector_steps: 2");
  EXPECT_CONTAINS(record, "nfe_per_batch: 10");  // 4 predictor steps + 2 × 3 corrector steps
}

TEST_F(FormalismsCli, ClassifierTrainsReportsAccuracyAndGuides) {
  const fs::path run = run_of(classifier());
  expect_loss_falls(run);
  const auto accuracy = test::metrics_values(run / "metrics.jsonl", "0.0");
  ASSERT_EQ(accuracy.size(), 1u);  // test accuracy at σ = 0, after the checkpoint
  EXPECT_GT(accuracy[0], 0.3);     // chance is 0.1
  EXPECT_TRUE(fs::exists(run / "ckpt" / "last.pt"));
  const std::string dir = out.file("guided");
  const auto r = sample({"--checkpoint", flow(), "--sampler", "euler", "--steps", "4", "--classifier", classifier(),
                         "--classifier-scale", "3", "--classes", "0-3", "--seeds", "0-3", "--out", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/seed3_class3" + image_extension(1)));
  const auto info = test::run_diffuse({"info", "--checkpoint", classifier()});
  EXPECT_EQ(info.exit_code, 0) << info.err;
  EXPECT_CONTAINS(info.out, "classifier");
}

double json_number(const std::string& text, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("\"" + key + "\": ([-0-9.e+]+)"))) return std::nan("");
  return std::stod(m[1]);
}

TEST_F(FormalismsCli, EvalComparesSamplesWithAReferenceAndItsStatsFile) {
  const std::string samples = out.file("samples");
  auto r = sample({"--checkpoint", flow(), "--sampler", "euler", "--steps", "4", "--classes", "0-9",
                   "--seeds", "0-19", "--out", samples});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string graded = shared_->dir.file("graded");
  const auto eval = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "eval");
    args.insert(args.end(), {"--features", classifier(), "--device", "cpu", "--kid-subsets", "5"});
    return test::run_diffuse(args);
  };
  r = eval({"--samples", samples, "--ref", "idx:" + graded + ":test", "--classes", "--out", out.file("m.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string json = test::read_file(out.file("m.json"));
  EXPECT_GT(json_number(json, "fd"), 0.0) << json;
  const double accuracy = json_number(json, "class_accuracy");
  EXPECT_GE(accuracy, 0.0);
  EXPECT_LE(accuracy, 1.0);
  EXPECT_CONTAINS(json, "\"count\": 20");
  EXPECT_CONTAINS(json, "\"precision\"");

  if (distributed_backend_built(DistributedBackend::gloo)) {
    // On three ranks (batches of 8: one each, and a reference split into more) the figures are
    // those of one process with as many threads as each rank (the thread count changes how
    // LibTorch's CPU kernels split their sums).
    const auto without_seconds = [](const std::string& text) {
      return std::regex_replace(text, std::regex("\"seconds\": [-0-9.e+]+"), "");
    };
    const std::vector<std::string> batched{"--samples", samples, "--ref", "idx:" + graded + ":test", "--classes",
                                           "--batch-size", "8", "--threads", "1"};
    auto one = batched, three = batched;
    one.insert(one.end(), {"--out", out.file("one.json")});
    three.insert(three.end(), {"--out", out.file("three.json"), "--nproc", "3"});
    ASSERT_EQ(eval(one).exit_code, 0);
    r = eval(three);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(without_seconds(test::read_file(out.file("one.json"))), without_seconds(test::read_file(out.file("three.json"))));
  }

  // A stats file is reused; a set against its own stats is at distance 0 with full precision and recall.
  r = eval({"--ref", "idx:" + graded + ":train", "--save-stats", out.file("ref.pt")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = eval({"--samples", "idx:" + graded + ":train", "--ref", out.file("ref.pt"), "--out", out.file("self.json")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string self = test::read_file(out.file("self.json"));
  EXPECT_NEAR(json_number(self, "fd"), 0.0, 1e-6) << self;
  EXPECT_DOUBLE_EQ(json_number(self, "precision"), 1.0);
  EXPECT_DOUBLE_EQ(json_number(self, "recall"), 1.0);

  // Another network (the raw weights instead of the EMA) is refused against that file.
  r = eval({"--samples", samples, "--ref", out.file("ref.pt"), "--no-ema"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_CONTAINS(r.err, "compute the reference again");
  EXPECT_EQ(test::line_count(r.err), 1u) << r.err;
  r = eval({"--samples", samples, "--ref", out.file("ref.pt"), "--feature-size", "299"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_CONTAINS(r.err, "--feature-size applies to --features torchscript:PATH only");
}

TEST_F(FormalismsCli, TrainingLogsFdAtEachEvaluation) {
  const fs::path run = run_of(trained("flow_eval", "unet", "diffusion:\n  schedule: flow\n  p_uncond: 0.2\n", "idx",
                                      {"train.eval_every=20", "train.eval.samples=10", "train.eval.sampler=euler",
                                       "train.eval.steps=3", "train.eval.cfg=2", "train.eval.features=" + classifier()}));
  const auto fd = test::metrics_values(run / "metrics.jsonl", "fd");
  ASSERT_EQ(fd.size(), 2u);  // steps 20 and 40
  for (const double v : fd) EXPECT_GT(v, 0.0);
  EXPECT_EQ(test::metrics_values(run / "metrics.jsonl", "class_accuracy").size(), 2u);
}

TEST_F(FormalismsCli, MisuseIsAOneLineError) {
  auto r = sample({"--checkpoint", ve(), "--sampler", "euler", "--snr", "0.2", "--out", out.file("a")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_CONTAINS(r.err, "--snr applies to --sampler pc only");
  r = sample({"--checkpoint", ve(), "--sampler", "pc", "--predictor", "langevin", "--out", out.file("b")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_CONTAINS(r.err, "not a predictor");
  r = sample({"--checkpoint", ve(), "--classifier", ve(), "--out", out.file("c")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_CONTAINS(r.err, "not a classifier");
  r = sample({"--checkpoint", classifier(), "--out", out.file("d")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_CONTAINS(r.err, "use it with diffuse sample --classifier");
  r = sample({"--checkpoint", ve(), "--sampler", "ddpm", "--out", out.file("e")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_CONTAINS(r.err, "ve schedule");
}

TEST_F(FormalismsCli, ReflowDrawsCouplingsRetrainsAndContinues) {
  const std::string teacher = flow();
  const std::string dir = out.file("reflow");
  std::vector<std::string> args{"reflow", "--checkpoint", teacher, "--pairs", "12", "--chunk", "5", "--sampler", "euler",
                                "--steps", "3", "--measure", "4", "--measure-steps", "4", "--config",
                                shared_->dir.file("flow.yaml"), "--set", "train.steps=10", "--set", "train.ckpt_every=10",
                                "--out", dir, "--threads", "1"};
  auto r = test::run_diffuse(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* file : {"pairs/couplings.json", "pairs/pairs_000000.pt", "pairs/pairs_000002.pt",
                           "train/ckpt/last.pt", "straightness_teacher.json", "straightness_reflowed.json", "reflow.json"})
    EXPECT_TRUE(fs::exists(fs::path(dir) / file)) << file;
  EXPECT_TRUE(fs::exists(dir + "/straightness" + image_extension(3)));
  const std::string summary = test::read_file(dir + "/reflow.json");
  EXPECT_GT(json_number(summary, "straightness_teacher"), 0.0);
  EXPECT_GT(json_number(summary, "straightness_reflowed"), 0.0);
  // The reflowed model trained on the couplings from the teacher's weights.
  const std::string config = test::read_file(dir + "/train/config.yaml");
  EXPECT_CONTAINS(config, "type: couplings");
  EXPECT_CONTAINS(config, "init_from: " + teacher);

  // Run again: nothing is drawn or trained twice.
  const auto stamp = fs::last_write_time(dir + "/pairs/pairs_000001.pt");
  r = test::run_diffuse(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.err + r.out, "has finished its 10 steps");
  EXPECT_EQ(fs::last_write_time(dir + "/pairs/pairs_000001.pt"), stamp);
  // The same folder with other solver settings would mix two sets of couplings.
  args[10] = "4";
  r = test::run_diffuse(args);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_CONTAINS(r.err, "holds couplings drawn with steps = 3, not 4");
  r = test::run_diffuse({"reflow", "--checkpoint", teacher, "--pairs", "4", "--sampler", "euler_a", "--config",
                         shared_->dir.file("flow.yaml"), "--out", out.file("stochastic")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_CONTAINS(r.err, "--sampler euler_a is stochastic");
  r = test::run_diffuse({"reflow", "--checkpoint", ve(), "--pairs", "4", "--config", shared_->dir.file("flow.yaml"),
                         "--out", out.file("ve")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_CONTAINS(r.err, "reflow retrains a flow-matching model");
}

TEST_F(FormalismsCli, ConsistencyDistillationTrainsAndSamplesInOneStep) {
  const std::string teacher = flow();
  const std::string distill = "distill:\n  method: consistency\n  teacher: " + teacher + "\n  n_start: 4\n  n_end: 6\n";
  const std::string diffusion = "diffusion:\n  schedule: flow\n  sigma_distribution: log_normal\n  p_uncond: 0.2\n";
  const fs::path run = run_of(trained("consistency", "unet", diffusion + distill));
  const auto loss = test::metrics_values(run / "metrics.jsonl", "loss");
  ASSERT_EQ(loss.size(), 8u);
  for (const double v : loss) EXPECT_TRUE(std::isfinite(v));
  const std::string dir = out.file("one_step");
  auto r = sample({"--checkpoint", (run / "ckpt" / "last.pt").string(), "--sampler", "consistency", "--steps", "1",
                   "--seeds", "0-3", "--out", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string record = test::read_file(dir + "/sampling.yaml");
  EXPECT_CONTAINS(record, "nfe_per_batch: 1");
  // The student must be the teacher's architecture: it starts from the teacher's weights.
  const std::string config = out.file("mismatch.yaml");
  std::string text = kBase;
  text.replace(text.find("@IDX@"), 5, shared_->dir.file("idx"));
  text.replace(text.find("@ARCH@"), 6, "unet");
  test::write_file(config, text + diffusion + distill);
  r = test::run_diffuse({"train", "--config", config, "--set", "model.unet.base_channels=8", "--set",
                         "run_dir=" + out.file("mismatch")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_CONTAINS(r.err, "the model section must match the teacher's");
}
