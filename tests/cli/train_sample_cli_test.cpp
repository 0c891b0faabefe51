// `diffuse train`, `diffuse sample` and `diffuse info --checkpoint` end to end on a tiny
// class-conditional UNet: the run folder, SIGINT/SIGTERM then --resume, every sampler, CFG,
// batch-size invariance of sample k (up to float rounding), the one-line errors of bad input, and info summaries.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>

#include "diffuse/inference/loaded_model.h"
#include "diffuse/io/image_io.h"
#include "diffuse/models/registry.h"
#include "diffuse/sampling/sampler.h"
#include "diffuse/train/checkpoint.h"
#include "support/dataset_files.h"
#include "support/expect_text.h"
#include "support/run_command.h"
#include "support/run_metrics.h"
#include "support/test_paths.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

// 8×8 images, 10 classes; UNet with 16 channels at 8×8 and 32 at 4×4, T = 50 so that ddpm
// (which walks every step of the training grid) stays cheap.
constexpr const char* kConfig = R"(name: tiny
run_dir: runs/tiny
data:
  type: idx
  path: @IDX@
  hflip: true
  num_workers: 1
model:
  arch: unet
  unet:
    base_channels: 16
    channel_mult: [1, 2]
    num_res_blocks: 1
    attention_resolutions: []
    num_groups: 8
    dropout: 0.1
diffusion:
  schedule: vp_linear
  timesteps: 50
  p_uncond: 0.2
train:
  steps: 4
  batch_size: 4
  lr: 0.001
  precision: fp32
  device: cpu
  log_every: 1
  sample_every: 4
  ckpt_every: 2
  keep: 3
  ema_decay: 0.9
  sample:
    sampler: ddim
    steps: 3
    count: 4
    cfg: 2.0
)";





// A one-line "error: ..." with exit code 1.
#define EXPECT_ONE_LINE_ERROR(result, part)                                  \
  do {                                                                       \
    EXPECT_EQ((result).exit_code, 1) << (result).err;                        \
    EXPECT_EQ((result).err.rfind("error: ", 0), 0u) << (result).err;         \
    EXPECT_EQ(test::line_count((result).err), 1u) << (result).err;                 \
    EXPECT_CONTAINS((result).err, part);                                     \
  } while (0)

// The suite's data and config, and its training runs, each trained on first use (ctest runs
// every test in a process of its own, so a test pays only for the runs it reads).
class TrainSampleCli : public ::testing::Test {
 protected:
  struct Shared {
    test::TempDir dir;
    std::string config;
    std::map<std::string, std::string> checkpoints;  // run name -> ckpt/last.pt
  };

  static void SetUpTestSuite() {
    shared_ = new Shared;
    auto& s = *shared_;
    test::write_idx_split(s.dir.file("idx"), "train", test::pattern_images(24, 8, 8),
                          test::pattern_labels(24), false);
    std::string text = kConfig;
    text.replace(text.find("@IDX@"), 5, s.dir.file("idx"));
    s.config = s.dir.file("tiny.yaml");
    test::write_file(s.config, text);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }

  // Trains run `name` (the config plus `sets`) unless done already; its last checkpoint.
  static std::string trained(const std::string& name, const std::vector<std::string>& sets = {}) {
    auto& s = *shared_;
    if (const auto it = s.checkpoints.find(name); it != s.checkpoints.end()) return it->second;
    std::vector<std::string> args{"train", "--config", s.config, "--set", "run_dir=" + s.dir.file(name),
                                  "--threads", "1"};
    for (const auto& set : sets) args.insert(args.end(), {"--set", set});
    const auto r = test::run_diffuse(args);
    if (r.exit_code != 0) throw std::runtime_error("training run '" + name + "' failed: " + r.err);
    return s.checkpoints[name] = s.dir.file(name) + "/ckpt/last.pt";
  }
  // The conditional model with label dropout (4 steps), one without label dropout, and an
  // unconditional one.
  static std::string ckpt() { return trained("run"); }
  static std::string no_dropout_ckpt() {
    return trained("nodrop", {"diffusion.p_uncond=0", "train.steps=1", "train.sample_every=0"});
  }
  static std::string unconditional_ckpt() {
    return trained("uncond", {"model.num_classes=0", "diffusion.p_uncond=0", "train.steps=1",
                              "train.sample_every=0"});
  }

  static test::CommandResult sample(std::vector<std::string> args) {
    args.insert(args.begin(), "sample");
    args.insert(args.end(), {"--device", "cpu"});
    return test::run_diffuse(args);
  }

  static Shared* shared_;
  test::TempDir out;
};

TrainSampleCli::Shared* TrainSampleCli::shared_ = nullptr;

const std::string kExt = image_extension(1);

}  // namespace

TEST_F(TrainSampleCli, TrainWritesTheRunFolder) {
  const fs::path run = fs::path(ckpt()).parent_path().parent_path();
  EXPECT_TRUE(fs::exists(run / "config.yaml"));
  EXPECT_TRUE(fs::exists(run / "samples" / ("step_4" + kExt)));
  EXPECT_TRUE(fs::exists(run / "ckpt" / "last.pt"));
  EXPECT_TRUE(fs::exists(run / "ckpt" / "step_2.pt"));
  EXPECT_TRUE(fs::exists(run / "ckpt" / "step_4.pt"));
  for (const auto& entry : fs::directory_iterator(run / "ckpt"))
    EXPECT_EQ(entry.path().extension(), ".pt") << "left behind: " << entry.path();
  EXPECT_EQ(test::metrics_steps(run / "metrics.jsonl"), (std::vector<int64_t>{1, 2, 3, 4}));
  // The saved config is the resolved one: the classes came from the dataset.
  const std::string saved = test::read_file((run / "config.yaml").string());
  EXPECT_CONTAINS(saved, "num_classes: 10");
  EXPECT_EQ(CheckpointReader(ckpt()).meta().step, 4);
  // A 4-image grid of a 10-class model: one row (8 px tiles, 2 px padding).
  EXPECT_EQ(read_image((run / "samples" / ("step_4" + kExt)).string(), 0).size(1), 12);
}

class TrainSignal : public TrainSampleCli, public ::testing::WithParamInterface<int> {};

TEST_P(TrainSignal, StopsWithACheckpointAndResumes) {
  const int signal_number = GetParam();
  const std::string run = out.file("run");
  const fs::path first = fs::path(run) / "ckpt" / "step_2.pt";
  auto child = test::start_diffuse({"train", "--config", shared_->config, "--set", "run_dir=" + run,
                                    "--set", "train.steps=100000", "--set", "train.sample_every=0",
                                    "--set", "train.ckpt_every=2", "--threads", "1"});
  // Checkpoints are renamed into place, so the file exists only once it is complete.
  if (!child->wait_until([&] { return fs::exists(first); })) {
    if (!child->running()) FAIL() << "training exited early: " << child->wait().err;
    FAIL() << "no first checkpoint " << first;  // the destructor kills the child
  }
  child->send_signal(signal_number);
  const auto stopped = child->wait();
  EXPECT_EQ(stopped.exit_code, 130) << stopped.err;  // README: "exits with 130"
  EXPECT_EQ(stopped.err, "");
  EXPECT_CONTAINS(stopped.out, "stopped at step");
  const std::string last = run + "/ckpt/last.pt";
  const int64_t step = CheckpointReader(last).meta().step;
  EXPECT_GE(step, 2);
  EXPECT_LT(step, 100000);
  for (const auto& entry : fs::directory_iterator(fs::path(run) / "ckpt"))
    EXPECT_EQ(entry.path().extension(), ".pt") << "left behind: " << entry.path();

  const auto resumed = test::run_diffuse({"train", "--config", shared_->config, "--set", "run_dir=" + run,
                                          "--set", "train.steps=" + std::to_string(step + 2),
                                          "--set", "train.sample_every=0", "--resume", last, "--threads", "1"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_CONTAINS(resumed.out, "resumed from " + last + " at step " + std::to_string(step));
  EXPECT_EQ(CheckpointReader(last).meta().step, step + 2);
  // Every step logged exactly once, across the stop.
  std::vector<int64_t> expected;
  for (int64_t k = 1; k <= step + 2; ++k) expected.push_back(k);
  EXPECT_EQ(test::metrics_steps(fs::path(run) / "metrics.jsonl"), expected);
}

INSTANTIATE_TEST_SUITE_P(Signals, TrainSignal, ::testing::Values(SIGINT, SIGTERM),
                         [](const auto& param_info) { return param_info.param == SIGINT ? "SIGINT" : "SIGTERM"; });

TEST_F(TrainSampleCli, EverySamplerWritesItsFiles) {
  for (const auto& entry : sampler_table()) {
    const std::string name = entry.name;
    SCOPED_TRACE(name);
    const std::string dir = out.file(name);
    const auto r = sample({"--checkpoint", ckpt(), "--sampler", name, "--steps", "3",
                           "--seeds", "0-2", "--out", dir});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(fs::exists(dir + "/grid" + kExt));
    // Without --class a conditional model cycles through the classes.
    EXPECT_TRUE(fs::exists(dir + "/seed0_class0" + kExt));
    EXPECT_TRUE(fs::exists(dir + "/seed1_class1" + kExt));
    EXPECT_TRUE(fs::exists(dir + "/seed2_class2" + kExt));
    EXPECT_FALSE(fs::exists(dir + "/samples.pt"));
    const std::string record = test::read_file(dir + "/sampling.yaml");
    EXPECT_CONTAINS(record, "sampler: " + name);
    EXPECT_CONTAINS(record, "checkpoint_step: 4");
  }
}

TEST_F(TrainSampleCli, GuidedSamplesOverTheClasses) {
  const std::string dir = out.file("cfg");
  const auto r = sample({"--checkpoint", ckpt(), "--sampler", "heun", "--steps", "3", "--cfg", "2.5",
                         "--classes", "0-9", "--seeds", "10-19", "--format", "pt", "--out", dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int k = 0; k < 10; ++k)
    EXPECT_TRUE(fs::exists(dir + "/seed" + std::to_string(10 + k) + "_class" + std::to_string(k) + kExt)) << k;
  torch::Tensor samples;
  torch::load(samples, dir + "/samples.pt");
  EXPECT_EQ(samples.sizes(), (std::vector<int64_t>{10, 1, 8, 8}));
  EXPECT_TRUE(torch::isfinite(samples).all().item<bool>());
  const std::string record = test::read_file(dir + "/sampling.yaml");
  EXPECT_CONTAINS(record, "cfg: 2.5");
  // Ten classes in one row of 10 tiles.
  EXPECT_EQ(read_image(dir + "/grid" + kExt, 0).sizes(), (std::vector<int64_t>{1, 12, 102}));
}

TEST_F(TrainSampleCli, SampleKIsTheSameWhateverTheBatchSize) {
  // A stochastic sampler: the noise of sample k comes from its own seed's generator.
  std::vector<torch::Tensor> runs;
  for (const char* batch : {"1", "4"}) {
    const std::string dir = out.file(std::string("b") + batch);
    const auto r = sample({"--checkpoint", ckpt(), "--sampler", "euler_a", "--steps", "4",
                           "--seeds", "3-7", "--batch-size", batch, "--format", "pt", "--out", dir});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    torch::Tensor samples;
    torch::load(samples, dir + "/samples.pt");
    runs.push_back(samples);
  }
  ASSERT_EQ(runs[0].sizes(), (std::vector<int64_t>{5, 1, 8, 8}));
  // The noise is identical; the network's float sums may round differently for another batch
  // size (GEMM blocking), so equal up to float rounding, not bit for bit. Noise taken from
  // the wrong seed would differ by O(1).
  const double difference = (runs[0] - runs[1]).abs().max().item<double>();
  EXPECT_LT(difference, 1e-4);
  // Different seeds give different images (the comparison above can fail).
  EXPECT_GT((runs[0][0] - runs[0][1]).abs().max().item<double>(), 0.1);
}

TEST_F(TrainSampleCli, BadInputsAreOneLineErrors) {
  const std::string dir = out.file("bad");
  auto r = sample({"--checkpoint", ckpt(), "--sampler", "fastest", "--out", dir});
  EXPECT_ONE_LINE_ERROR(r, "unknown sampler 'fastest'");
  for (const auto& entry : sampler_table()) EXPECT_CONTAINS(r.err, entry.name);

  r = sample({"--checkpoint", no_dropout_ckpt(), "--cfg", "3", "--out", dir});
  EXPECT_ONE_LINE_ERROR(r, "p_uncond");
  EXPECT_CONTAINS(r.err, "--cfg");
  r = sample({"--checkpoint", unconditional_ckpt(), "--cfg", "3", "--out", dir});
  EXPECT_ONE_LINE_ERROR(r, "unconditional");

  r = sample({"--checkpoint", ckpt(), "--class", "10", "--out", dir});
  EXPECT_ONE_LINE_ERROR(r, "class 10 is out of range");
  EXPECT_CONTAINS(r.err, "10 classes (0-9)");

  const std::string missing = out.file("nowhere.pt");
  r = sample({"--checkpoint", missing, "--out", dir});
  EXPECT_ONE_LINE_ERROR(r, missing + ": checkpoint file not found");

  const std::string noise = out.file("noise.pt");
  test::write_file(noise, std::string(1000, 'x'));
  r = sample({"--checkpoint", noise, "--out", dir});
  EXPECT_ONE_LINE_ERROR(r, noise + ": not a readable checkpoint");
  EXPECT_FALSE(fs::exists(dir)) << "nothing is written when sampling cannot start";

  // Malformed flag values are usage errors (exit 2, like an unknown flag).
  r = sample({"--checkpoint", ckpt(), "--seeds", "0-x", "--out", dir});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("error: --seeds: cannot read '0-x'", 0), 0u) << r.err;
  r = sample({"--checkpoint", ckpt(), "--bogus", "--out", dir});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_CONTAINS(r.err, "unknown flag '--bogus'");
}

TEST_F(TrainSampleCli, InfoSummarisesACheckpoint) {
  const auto r = test::run_diffuse({"info", "--checkpoint", ckpt()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  LoadedModel model = load_model_for_inference(ckpt(), true, torch::kCPU);
  const int64_t params = count_parameters(model.precond->net());
  EXPECT_CONTAINS(r.out, "step:     4 of 4");
  EXPECT_CONTAINS(r.out, "model:    unet, input 1x8x8, 10 classes");
  EXPECT_CONTAINS(r.out, "params:   " + std::to_string(params) + " (");
  EXPECT_CONTAINS(r.out, "ema:      yes");
  EXPECT_CONTAINS(r.out, "classes:  10 (0=0, 1=1");
  // The resolved config follows.
  EXPECT_CONTAINS(r.out, "config:\n");
  EXPECT_CONTAINS(r.out, "base_channels: 16");
  EXPECT_CONTAINS(r.out, "num_classes: 10");

  const auto missing = test::run_diffuse({"info", "--checkpoint", out.file("none.pt")});
  EXPECT_ONE_LINE_ERROR(missing, out.file("none.pt") + ": checkpoint file not found");
  const auto both = test::run_diffuse({"info", "--checkpoint", ckpt(), "--config", shared_->config});
  EXPECT_EQ(both.exit_code, 2);
}

TEST_F(TrainSampleCli, InfoCalibrationTabulatesTheErrorPerSigmaBand) {
  const auto r = test::run_diffuse({"info", "--checkpoint", ckpt(), "--calibration", "--split", "train", "--images",
                                    "24", "--bands", "3", "--batch", "10", "--threads", "1", "--out", out.file("cal")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "calibration: 24 images of " + shared_->dir.file("idx") + " (split train), EMA weights");
  EXPECT_CONTAINS(r.out, "model/Wiener");
  const auto json = nlohmann::json::parse(test::read_file(out.file("cal/calibration.json")));
  EXPECT_EQ(json["images"], 24);
  ASSERT_EQ(json["bands"].size(), 3u);
  // The bands tile the schedule's σ range (VP linear, T = 50) in log space, one table row each.
  const LoadedModel model = load_model_for_inference(ckpt(), true, torch::kCPU);
  const NoiseSchedule& schedule = model.precond->schedule();
  EXPECT_NEAR(json["bands"][0]["sigma_lo"].get<double>(), schedule.sigma_min(), 1e-9 * schedule.sigma_min());
  EXPECT_NEAR(json["bands"][2]["sigma_hi"].get<double>(), schedule.sigma_max(), 1e-9 * schedule.sigma_max());
  for (const auto& band : json["bands"]) {
    EXPECT_GT(band["mse"].get<double>(), 0.0);
    EXPECT_NEAR(band["ratio"].get<double>(), band["mse"].get<double>() / band["wiener_mse"].get<double>(), 1e-12);
  }
  const std::regex row("\n  [0-9.e-]+ - [0-9.e+-]+ +[0-9.e+-]+ ");
  EXPECT_EQ(std::distance(std::sregex_iterator(r.out.begin(), r.out.end(), row), std::sregex_iterator()), 3) << r.out;
  EXPECT_TRUE(fs::exists(out.file("cal/calibration" + image_extension(3))));

  // The default test split is not in this data set: the error names the file.
  const auto missing = test::run_diffuse({"info", "--checkpoint", ckpt(), "--calibration", "--threads", "1"});
  EXPECT_ONE_LINE_ERROR(missing, shared_->dir.file("idx"));
}

TEST_F(TrainSampleCli, InfoCountsTheModelOfAConfig) {
  auto r = test::run_diffuse({"info", "--config", shared_->config});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The model of the config resolved against the dataset (1×8×8, 10 classes).
  const ModelOptions tiny = resolve_model_options(load_experiment_config(shared_->config).model, 1, 8, 10);
  EXPECT_CONTAINS(r.out, "params:   " + std::to_string(count_parameters(*make_model(tiny))) + " (");

  // DiT-XL/2 at 32×32×4 latents, 1000 classes, learned σ: 675M parameters (Peebles & Xie
  // 2023, Table 1: 675.1M with the frozen position embedding; 674,834,720 trainable).
  const std::string dit = out.file("dit.yaml");
  test::write_file(dit, "data:\n  type: idx\n  path: " + shared_->dir.file("idx") +
                            "\nmodel:\n  arch: dit\n  preset: dit_xl_2\n  in_channels: 4\n  image_size: 32\n"
                            "  num_classes: 1000\n  learn_sigma: true\n");
  r = test::run_diffuse({"info", "--config", dit});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "model:    dit (preset dit_xl_2), input 4x32x32, 1000 classes, learned sigma");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(params:   (\d+) )"))) << r.out;
  const double millions = static_cast<double>(std::stoll(m[1])) / 1e6;
  EXPECT_NEAR(millions, 675.1, 0.005 * 675.1);
  EXPECT_EQ(std::stoll(m[1]), 674'834'720);
}
