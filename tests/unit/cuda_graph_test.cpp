// CUDA graphs (train.cuda_graph, sample --cuda-graph) refuse, with the key or flag named,
// whatever cannot be captured: a CPU device, a build without CUDA LibTorch 2.x, gradient
// accumulation. Replays themselves are checked by tests/gpu.
#include <gtest/gtest.h>

#include "core/cuda_graph.h"
#include "diffuse/config/experiment_config.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/models/registry.h"
#include "diffuse/sampling/generate.h"
#include "support/expect_text.h"
#include "train/graphed_train_step.h"

using namespace diffuse;

TEST(CudaGraph, RefusesTheCpuNamingTheFlag) {
  const auto message = test::error_message<ConfigError>([] { CudaGraph graph(torch::kCPU, "--cuda-graph"); });
  EXPECT_CONTAINS(message, "--cuda-graph");
  // Without CUDA graph support the build is named; with it, the device.
  EXPECT_CONTAINS(message, CudaGraph::supported() ? "cpu" : "LibTorch");
}

TEST(CudaGraph, TrainingStepNeedsTheFusedOptimizer) {
  const auto message = test::error_message<ConfigError>([] {
    GraphedTrainStep step([](const torch::Tensor& x, const TrainingDraw&) { return x.sum(); }, torch::kCPU, false);
  });
  EXPECT_CONTAINS(message, "train.cuda_graph");
}

TEST(CudaGraph, ConfigRefusesGradientAccumulation) {
  ConfigNode root = ConfigNode::load_string("train:\n  cuda_graph: true\n  grad_accum: 2\n", "<cfg>");
  const auto message = test::error_message<ConfigError>([&] { parse_experiment_config(root); });
  EXPECT_CONTAINS(message, "cuda_graph");
  EXPECT_CONTAINS(message, "grad_accum 2");
}

TEST(CudaGraph, ConfigRoundTripsTheSpeedKeys) {
  ConfigNode root = ConfigNode::load_string("train:\n  cuda_graph: true\n  fused_adamw: false\n", "<cfg>");
  const auto config = parse_experiment_config(root);
  EXPECT_TRUE(config.train.cuda_graph);
  EXPECT_FALSE(config.train.fused_adamw);
  ConfigNode again = ConfigNode::load_string(to_yaml_string(emit_experiment_config(config)), "<emitted>");
  const auto back = parse_experiment_config(again);
  EXPECT_TRUE(back.train.cuda_graph);
  EXPECT_FALSE(back.train.fused_adamw);
}

TEST(CudaGraph, SamplingOnTheCpuIsRefusedBeforeAnyWork) {
  ModelOptions m;
  m.arch = ModelArch::unet;
  m.in_channels = 1;
  m.image_size = 8;
  m.num_classes = 0;
  m.unet.base_channels = 8;
  m.unet.channel_mult = {1};
  m.unet.num_res_blocks = 1;
  m.unet.attention_resolutions = {};
  m.unet.num_groups = 4;
  DiffusionOptions d;
  Precond precond(make_model(m), d.prediction, NoiseSchedule::from_options(d));
  GenerateOptions g;
  g.seeds = {0};
  g.cuda_graph = true;
  int64_t calls = 0;
  const auto message = test::error_message<ConfigError>(
      [&] { generate_samples(precond, g, [&](const SamplerStep&) { ++calls; }); });
  EXPECT_CONTAINS(message, "--cuda-graph");
  EXPECT_EQ(calls, 0);
}
