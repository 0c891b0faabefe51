// Runs that must not lose or mix work: kill -9 at random moments leaves a last.pt that
// verifies and resumes; a reused run_dir is refused unless --overwrite; checkpoints come
// before the periodic samples and their time is logged apart from img/s; latent models
// (4 channels) train with tensor sample grids and sample with --format pt; `info --config`
// summarises a model whose data is not on disk.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "diffuse/train/checkpoint.h"
#include "support/expect_text.h"
#include "support/run_command.h"
#include "support/run_metrics.h"
#include "support/test_paths.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

std::string tiny_config(const std::string& run_dir, int sample_every = 0) {
  return "name: tiny\nrun_dir: " + run_dir +
         "\ndata: {type: random, resolution: 8, channels: 1, limit: 16, num_workers: 0}\n"
         "model:\n  arch: unet\n  unet: {base_channels: 16, channel_mult: [1, 2], num_res_blocks: 1, "
         "attention_resolutions: [], num_groups: 8}\n"
         "diffusion: {timesteps: 50}\n"
         "train:\n  {steps: 2, batch_size: 4, device: cpu, precision: fp32, log_every: 1, ckpt_every: 1, sample_every: " +
         std::to_string(sample_every) + ", sample: {sampler: ddim, steps: 2, count: 2}}\n";
}



// The largest N of ckpt/step_N.pt in `run` (0 when none).
int64_t newest_numbered_checkpoint(const fs::path& run) {
  int64_t newest = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run / "ckpt", ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, std::regex(R"(step_(\d+)\.pt)"))) newest = std::max<int64_t>(newest, std::stoll(m[1]));
  }
  return newest;
}

}  // namespace

TEST(Reliability, KillNineAtRandomMomentsLeavesACheckpointThatVerifiesAndResumes) {
  test::TempDir dir;
  const fs::path run = dir.path() / "run";
  const std::string config = dir.file("c.yaml");
  test::write_file(config, tiny_config(run.string()));
  const std::string last = (run / "ckpt" / "last.pt").string();
  const unsigned seed = std::random_device{}();
  SCOPED_TRACE("kill delays drawn with seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(0, 400);
  int64_t step = 0;
  for (int round = 0; round < 3; ++round) {
    std::vector<std::string> args{"train", "--config", config, "--set", "train.steps=1000000", "--threads", "1"};
    if (round > 0) args.insert(args.end(), {"--resume", last});
    auto child = test::start_diffuse(args);
    // Past the first checkpoint of this round, then at a random moment of the steps and
    // checkpoint writes that follow.
    ASSERT_TRUE(child->wait_until([&] { return newest_numbered_checkpoint(run) > step; })) << child->wait().err;
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    child->send_signal(SIGKILL);
    EXPECT_EQ(child->wait().exit_code, 128 + SIGKILL);

    const auto verified = test::run_diffuse({"info", "--checkpoint", last, "--verify"});
    ASSERT_EQ(verified.exit_code, 0) << verified.err;
    EXPECT_CONTAINS(verified.out, last + ": ok, checksum ok (CRC-32 ");
    const int64_t saved = CheckpointReader(last).meta().step;
    EXPECT_GE(saved, std::max<int64_t>(step, 1));
    step = saved;
  }
  const auto resumed = test::run_diffuse({"train", "--config", config, "--set", "train.steps=" + std::to_string(step + 2),
                                          "--resume", last, "--threads", "1"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(CheckpointReader(last).meta().step, step + 2);
  // Rows of steps past the checkpoint (written before a kill) were dropped on resume.
  const auto steps = test::metrics_steps(run / "metrics.jsonl");
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.back(), step + 2);
  EXPECT_TRUE(std::is_sorted(steps.begin(), steps.end()));
}

TEST(Reliability, AReusedRunDirIsRefusedUnlessOverwrite) {
  test::TempDir dir;
  const fs::path run = dir.path() / "run";
  const std::string config = dir.file("c.yaml");
  test::write_file(config, tiny_config(run.string()));
  ASSERT_EQ(test::run_diffuse({"train", "--config", config, "--threads", "1"}).exit_code, 0);
  const std::string before = test::read_file(run / "ckpt" / "last.pt");

  const auto again = test::run_diffuse({"train", "--config", config, "--threads", "1", "--set", "train.steps=1"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_CONTAINS(again.err, "already holds a run");
  EXPECT_CONTAINS(again.err, "--overwrite");
  EXPECT_EQ(test::read_file(run / "ckpt" / "last.pt"), before) << "the earlier run was touched";
  EXPECT_EQ(test::metrics_steps(run / "metrics.jsonl"), (std::vector<int64_t>{1, 2}));

  const auto overwritten =
      test::run_diffuse({"train", "--config", config, "--threads", "1", "--set", "train.steps=1", "--overwrite"});
  ASSERT_EQ(overwritten.exit_code, 0) << overwritten.err;
  EXPECT_EQ(test::metrics_steps(run / "metrics.jsonl"), (std::vector<int64_t>{1}));
  EXPECT_FALSE(fs::exists(run / "ckpt" / "step_2.pt"));
  EXPECT_EQ(CheckpointReader((run / "ckpt" / "last.pt").string()).meta().step, 1);
}

TEST(Reliability, CheckpointsComeBeforeSamplesAndTheirTimeIsLoggedApart) {
  test::TempDir dir;
  const fs::path run = dir.path() / "run";
  const std::string config = dir.file("c.yaml");
  test::write_file(config, tiny_config(run.string(), 1));
  const auto r = test::run_diffuse({"train", "--config", config, "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t checkpoint = r.out.find("checkpoint " + (run / "ckpt" / "last.pt").string());
  const size_t samples = r.out.find("wrote " + (run / "samples" / "step_1").string());
  ASSERT_NE(checkpoint, std::string::npos) << r.out;
  ASSERT_NE(samples, std::string::npos) << r.out;
  EXPECT_LT(checkpoint, samples) << r.out;
  EXPECT_CONTAINS(r.out, "img/s | sampling ");
  // The sampling and checkpoint time of step 1 lands in step 2's window, reported on its own.
  const std::string metrics = test::read_file(run / "metrics.jsonl");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(metrics, m, std::regex(R"re("step": 2, .*"sample_s": ([0-9.e-]+), "ckpt_s": ([0-9.e-]+))re")))
      << metrics;
  EXPECT_GT(std::stod(m[1]), 0.0);
  EXPECT_GT(std::stod(m[2]), 0.0);
}

TEST(Reliability, LatentModelsTrainAndSampleAsTensors) {
  test::TempDir dir;
  const fs::path run = dir.path() / "run";
  const std::string config = dir.file("c.yaml");
  test::write_file(config, tiny_config(run.string(), 2));
  // The random dataset takes any channel count: 4 like SD-VAE latents.
  const auto trained = test::run_diffuse({"train", "--config", config, "--threads", "1", "--set", "data.channels=4"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  torch::Tensor grid;
  torch::load(grid, (run / "samples" / "step_2.pt").string());
  EXPECT_EQ(grid.sizes(), (std::vector<int64_t>{2, 4, 8, 8}));
  EXPECT_FALSE(fs::exists(run / "samples" / "step_2.png"));

  const std::string out = dir.file("out");
  const auto sampled = test::run_diffuse({"sample", "--checkpoint", (run / "ckpt" / "last.pt").string(), "--steps", "2",
                                          "--seeds", "0-2", "--format", "pt", "--out", out});
  ASSERT_EQ(sampled.exit_code, 0) << sampled.err;
  torch::Tensor samples;
  torch::load(samples, out + "/samples.pt");
  EXPECT_EQ(samples.sizes(), (std::vector<int64_t>{3, 4, 8, 8}));
  EXPECT_TRUE(torch::isfinite(samples).all().item<bool>());
  EXPECT_TRUE(fs::exists(out + "/sampling.yaml"));
  EXPECT_FALSE(fs::exists(out + "/grid.png"));
}

TEST(Reliability, InfoSummarisesTheModelWhenTheDataIsMissing) {
  test::TempDir dir;
  for (const char* name : {"cifar10_ddpm.yaml", "imagenet_latent_dit_xl2.yaml"}) {
    SCOPED_TRACE(name);
    const auto config = (test::source_dir() / "configs" / name).string();
    const auto r = test::run_diffuse({"info", "--config", config, "--set", "data.path=" + dir.file("absent")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_CONTAINS(r.out, "dataset:  missing: " + dir.file("absent"));
    EXPECT_CONTAINS(r.out, "params:   ");
  }
  const auto cifar = test::run_diffuse({"info", "--config", (test::source_dir() / "configs" / "cifar10_ddpm.yaml").string(),
                                        "--set", "data.path=" + dir.file("absent")});
  EXPECT_CONTAINS(cifar.out, "model:    unet (preset ddpm_cifar10), input 3x32x32");
}
