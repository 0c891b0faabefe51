// scripts/bench.sh --small and scripts/bench_sample.sh run end to end on the CPU and print
// well-formed figures (the speed itself is measured on the GPU, never asserted in tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "diffuse/distributed/communicator.h"
#include "support/run_command.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

// The positive number after "KEY": in `json`, or -1 when absent.
double number_after(const std::string& json, const std::string& key, size_t from = 0) {
  const auto at = json.find("\"" + key + "\": ", from);
  if (at == std::string::npos) return -1.0;
  return std::stod(json.substr(at + key.size() + 4));
}

std::vector<std::pair<std::string, std::string>> bench_env() {
  return {{"DIFFUSE_BIN", test::diffuse_binary()}};
}

}  // namespace

TEST(BenchScript, SmallRunPrintsEveryWorkload) {
  const auto script = (test::source_dir() / "scripts" / "bench.sh").string();
  const auto result = test::run_command({"/bin/bash", script, "--small", "--device", "cpu"}, bench_env());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  for (const std::string workload : {"unet_train", "unet_sample_ddim", "dit_train", "dit_sample_ddim"}) {
    const auto at = result.out.find("\"" + workload + "\": {");
    ASSERT_NE(at, std::string::npos) << workload << " missing in\n" << result.out;
    EXPECT_GT(number_after(result.out, "img_per_s", at), 0.0) << workload;
    EXPECT_GT(number_after(result.out, "peak_memory_mb", at), 0.0) << workload;
  }
  EXPECT_NE(result.out.find("\"device\": \"cpu\""), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("\"small\": true"), std::string::npos) << result.out;
}

TEST(BenchScript, NprocReportsImagesPerSecondAtBothSizesAndTheEfficiency) {
  if (!distributed_backend_built(DistributedBackend::gloo)) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  const auto script = (test::source_dir() / "scripts" / "bench.sh").string();
  const auto result = test::run_command(
      {"/bin/bash", script, "--small", "--device", "cpu", "--nproc", "2", "--only", "unet_train"}, bench_env());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto at = result.out.find("\"unet_train\": {");
  ASSERT_NE(at, std::string::npos) << result.out;
  EXPECT_GT(number_after(result.out, "img_per_s_1", at), 0.0) << result.out;
  EXPECT_GT(number_after(result.out, "img_per_s_2", at), 0.0) << result.out;
  EXPECT_GT(number_after(result.out, "scaling_efficiency", at), 0.0) << result.out;
  EXPECT_EQ(result.out.find("dit_train"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("\"nproc\": 2"), std::string::npos) << result.out;
}

TEST(BenchScript, UnknownArgumentExitsWithUsage) {
  const auto script = (test::source_dir() / "scripts" / "bench.sh").string();
  const auto result = test::run_command({"/bin/bash", script, "--fast"}, bench_env());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("unknown argument '--fast'"), std::string::npos) << result.err;
}

TEST(BenchSampleScript, ConfigModelGivesOneJsonLine) {
  test::TempDir dir;
  const std::string config = dir.file("tiny.yaml");
  test::write_file(config,
                   "data: {type: random, resolution: 8, channels: 1, limit: 16}\n"
                   "model: {arch: unet, unet: {base_channels: 8, channel_mult: [1], num_res_blocks: 1,"
                   " attention_resolutions: [], num_groups: 4}}\n"
                   "train: {batch_size: 2}\n");
  const auto script = (test::source_dir() / "scripts" / "bench_sample.sh").string();
  const auto result = test::run_command({"/bin/bash", script, "--config", config, "--sampler", "heun",
                                         "--steps", "3", "--batch-size", "2", "--device", "cpu"},
                                        bench_env());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(std::count(result.out.begin(), result.out.end(), '\n'), 1) << result.out;
  EXPECT_EQ(number_after(result.out, "nfe"), 5.0) << result.out;  // Heun: 2 per step, 1 into σ = 0
  EXPECT_GT(number_after(result.out, "img_per_s"), 0.0) << result.out;
}
