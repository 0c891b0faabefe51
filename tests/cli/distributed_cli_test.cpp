// Data-parallel runs on CPU (Gloo over 127.0.0.1): N ranks of batch B train like one process
// of batch N·B, stop and resume bit for bit, resume on another world size at the same sample,
// fail with the dead rank's name instead of hanging, refuse ranks whose configs differ, and
// sample the same images as one process.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include "diffuse/distributed/communicator.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/train/checkpoint.h"
#include "distributed_launch.h"
#include "support/expect_text.h"
#include "support/run_command.h"
#include "support/run_metrics.h"
#include "support/test_paths.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

// 32 random 8x8 images: 4 global batches of 8 an epoch, so six steps cross an epoch.
std::string tiny_config(const fs::path& run_dir, int batch, int steps) {
  return "name: tiny\nrun_dir: " + run_dir.string() +
         "\ndata: {type: random, resolution: 8, channels: 1, limit: 32, num_workers: 0}\n"
         "model:\n  arch: unet\n  unet: {base_channels: 16, channel_mult: [1, 2], num_res_blocks: 1, "
         "attention_resolutions: [], num_groups: 8}\n"
         "diffusion: {timesteps: 50, p_uncond: 0.2}\n"
         "train: {steps: " + std::to_string(steps) + ", batch_size: " + std::to_string(batch) +
         ", device: cpu, precision: fp32, log_every: 1, ckpt_every: 3, sample_every: 0}\n";
}

struct TinyRun {
  test::TempDir dir;
  fs::path run_dir() const { return dir.path() / "run"; }
  std::string config;
  TinyRun(int batch, int steps) : config(dir.file("c.yaml")) {
    test::write_file(config, tiny_config(run_dir(), batch, steps));
  }
  std::string last() const { return (run_dir() / "ckpt" / "last.pt").string(); }
};

test::CommandResult train(const TinyRun& run, std::vector<std::string> extra) {
  std::vector<std::string> args{"train", "--config", run.config, "--threads", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return test::run_diffuse(args);
}

std::vector<torch::Tensor> weights(const std::string& checkpoint) {
  return load_model_for_inference(checkpoint, /*use_ema=*/false, torch::kCPU).precond->parameters();
}

double max_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  return worst;
}

bool bitwise_equal(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!torch::equal(a[i], b[i])) return false;
  return true;
}


// torchrun's environment for rank `rank` of two.
std::vector<std::pair<std::string, std::string>> rank_env(int rank, int port) {
  return {{"RANK", std::to_string(rank)}, {"LOCAL_RANK", std::to_string(rank)}, {"WORLD_SIZE", "2"},
          {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", std::to_string(port)}};
}

}  // namespace

// Tolerance: the ranks average two means over B where one process takes one mean over 2B,
// and the gradients are summed in another order, so the figures agree to float32 rounding
// (~1e-7 relative) and not bit for bit; six AdamW steps of lr 2e-4 keep the weights within 1e-5.
TEST(Distributed, TwoRanksOfBatchBTrainLikeOneRankOfBatch2B) {
  if (!distributed_backend_built(DistributedBackend::gloo)) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  TinyRun one(8, 6), two(4, 6);
  const auto a = train(one, {});
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const auto b = train(two, {"--nproc", "2"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_CONTAINS(b.err + b.out, "data parallel over 2 ranks (gloo): 8 images a step, 4 per rank");
  const auto la = test::metrics_losses(one.run_dir() / "metrics.jsonl");
  const auto lb = test::metrics_losses(two.run_dir() / "metrics.jsonl");
  ASSERT_EQ(la.size(), 6u);
  ASSERT_EQ(lb.size(), 6u);
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-5 * std::abs(la[i])) << "step " << i + 1;
  EXPECT_LT(max_difference(weights(one.last()), weights(two.last())), 1e-5);
  // Only rank 0 writes: one metrics row per step.
  EXPECT_EQ(test::metrics_steps(two.run_dir() / "metrics.jsonl"), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(Distributed, TwoRankStopAndResumeEqualsAnUninterruptedTwoRankRunBitForBit) {
  if (!distributed_backend_built(DistributedBackend::gloo)) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  TinyRun whole(4, 6), halves(4, 6);
  ASSERT_EQ(train(whole, {"--nproc", "2"}).exit_code, 0);
  const auto first = train(halves, {"--nproc", "2", "--set", "train.steps=3"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const auto second = train(halves, {"--nproc", "2", "--resume", halves.last()});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_TRUE(bitwise_equal(weights(whole.last()), weights(halves.last())));
  EXPECT_EQ(test::metrics_losses(whole.run_dir() / "metrics.jsonl"),
            test::metrics_losses(halves.run_dir() / "metrics.jsonl"));
  EXPECT_EQ(CheckpointReader(whole.last()).meta().loader_position,
            CheckpointReader(halves.last()).meta().loader_position);
}

TEST(Distributed, ATwoRankCheckpointResumesOnOneRankAtTheSameSample) {
  if (!distributed_backend_built(DistributedBackend::gloo)) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  TinyRun reference(8, 6), switched(4, 6);
  ASSERT_EQ(train(reference, {}).exit_code, 0);
  ASSERT_EQ(train(switched, {"--nproc", "2", "--set", "train.steps=3"}).exit_code, 0);
  // Global batch 8 at step 3: the next batch starts at sample 24 of epoch 0.
  EXPECT_EQ(CheckpointReader(switched.last()).meta().loader_position, 24);
  const auto resumed = train(switched, {"--resume", switched.last(), "--set", "train.batch_size=8"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const auto& end = CheckpointReader(switched.last()).meta();
  EXPECT_EQ(end.loader_epoch, CheckpointReader(reference.last()).meta().loader_epoch);
  EXPECT_EQ(end.loader_position, CheckpointReader(reference.last()).meta().loader_position);
  const auto la = test::metrics_losses(reference.run_dir() / "metrics.jsonl");
  const auto lb = test::metrics_losses(switched.run_dir() / "metrics.jsonl");
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-5 * std::abs(la[i])) << "step " << i + 1;
  EXPECT_LT(max_difference(weights(reference.last()), weights(switched.last())), 1e-5);
}

TEST(Distributed, AKilledRankMakesTheOtherExitNamingIt) {
  if (!distributed_backend_built(DistributedBackend::gloo)) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  TinyRun run(4, 1000000);
  const int port = cli::free_local_port();
  std::vector<std::unique_ptr<test::BackgroundCommand>> ranks;
  for (int r = 0; r < 2; ++r)
    ranks.push_back(test::start_diffuse({"train", "--config", run.config, "--threads", "1", "--dist-timeout", "30"},
                                        rank_env(r, port)));
  const auto metrics = run.run_dir() / "metrics.jsonl";
  ASSERT_TRUE(ranks[0]->wait_until([&] { return test::metrics_steps(metrics).size() >= 3; }, 120))
      << ranks[0]->wait().err;
  ranks[1]->send_signal(SIGKILL);
  EXPECT_EQ(ranks[1]->wait().exit_code, 128 + SIGKILL);
  // A limit far above the 30 s timeout only keeps a broken build from hanging the suite.
  ranks[0]->wait_until([] { return false; }, 60);
  ASSERT_FALSE(ranks[0]->running()) << "rank 0 still runs 60 s after rank 1 died";
  const auto survivor = ranks[0]->wait();
  EXPECT_EQ(survivor.exit_code, 1);
  EXPECT_CONTAINS(survivor.err, "error: rank 0: ");
  EXPECT_CONTAINS(survivor.err, "rank 1 stopped responding");
}

TEST(Distributed, RanksWithDifferentConfigsAreRefusedAtTheStart) {
  if (!distributed_backend_built(DistributedBackend::gloo)) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  TinyRun run(4, 2);
  const int port = cli::free_local_port();
  auto rank0 = test::start_diffuse({"train", "--config", run.config, "--threads", "1"}, rank_env(0, port));
  auto rank1 = test::start_diffuse({"train", "--config", run.config, "--threads", "1", "--set", "train.lr=0.001"},
                                   rank_env(1, port));
  for (auto* rank : {rank0.get(), rank1.get()}) {
    const auto result = rank->wait();
    EXPECT_EQ(result.exit_code, 1);
    EXPECT_CONTAINS(result.err, "the resolved config of rank 1 differs from rank 0's");
  }
  EXPECT_FALSE(fs::exists(run.run_dir() / "ckpt"));
}

TEST(Distributed, SigintToTheLauncherStopsEveryRankAfterTheSameStepWithOneCheckpoint) {
  if (!distributed_backend_built(DistributedBackend::gloo)) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  TinyRun run(4, 1000000);
  auto launcher = test::start_diffuse({"train", "--config", run.config, "--nproc", "2", "--set", "train.ckpt_every=1000000"});
  const auto metrics = run.run_dir() / "metrics.jsonl";
  ASSERT_TRUE(launcher->wait_until([&] { return test::metrics_steps(metrics).size() >= 2; }, 120)) << launcher->wait().err;
  launcher->send_signal(SIGINT);
  const auto result = launcher->wait();
  EXPECT_EQ(result.exit_code, 130) << result.err;
  const int64_t step = CheckpointReader(run.last()).meta().step;
  EXPECT_CONTAINS(result.err + result.out, "[rank 0] stopped at step " + std::to_string(step) + " on request");
  EXPECT_CONTAINS(result.err + result.out, "[rank 1] stopped at step " + std::to_string(step) + " on request");
}

TEST(Distributed, SamplingOnThreeRanksWritesTheImagesOfOneProcess) {
  if (!distributed_backend_built(DistributedBackend::gloo)) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  TinyRun run(8, 1);
  ASSERT_EQ(train(run, {}).exit_code, 0);
  test::TempDir out;
  const std::vector<std::string> args{"sample", "--checkpoint", run.last(), "--seeds", "0-10", "--batch-size", "3",
                                      "--steps", "2", "--format", "pt", "--threads", "1"};
  auto single = args, shared = args;
  single.insert(single.end(), {"--out", out.file("one")});
  shared.insert(shared.end(), {"--out", out.file("three"), "--nproc", "3"});
  ASSERT_EQ(test::run_diffuse(single).exit_code, 0);
  const auto three = test::run_diffuse(shared);
  ASSERT_EQ(three.exit_code, 0) << three.err;
  EXPECT_EQ(test::read_file(out.file("one/samples.pt")), test::read_file(out.file("three/samples.pt")));
  EXPECT_EQ(test::read_file(out.file("one/grid.png")), test::read_file(out.file("three/grid.png")));
}
