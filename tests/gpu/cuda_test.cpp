// CUDA against the CPU (DESIGN §5, label gpu): the UNet, the DiT, every sampler, DPS and the
// training step give the CPU's results within stated tolerances, and CUDA-graph replays give
// the eager results. Every test skips, saying so, where no CUDA device is present.
//
// Tolerances: TF32 is switched off, so CUDA and CPU compute in float32 with different
// summation orders (cuDNN/cuBLAS blocking): about 1e-6 relative per layer, which grows to
// ~1e-4 over a network and ~1e-3 over a 10-step sampling loop in [-1, 1]. Graph replays run
// the very kernels of the eager call: 1e-5.
#include <gtest/gtest.h>

#include <ATen/Context.h>

#include "diffuse/core/compat.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/inverse/dps.h"
#include "diffuse/inverse/operator.h"
#include "diffuse/models/registry.h"
#include "diffuse/sampling/generate.h"
#include "diffuse/sampling/sampler.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "diffuse/train/optimizer.h"

using namespace diffuse;

namespace {

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!compat::cuda_available()) GTEST_SKIP() << "no CUDA device: the gpu tests need one";
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
};

ModelOptions small_unet() {
  ModelOptions m;
  m.arch = ModelArch::unet;
  m.in_channels = 3;
  m.image_size = 16;
  m.num_classes = 10;
  m.unet.base_channels = 32;
  m.unet.channel_mult = {1, 2};
  m.unet.num_res_blocks = 1;
  m.unet.attention_resolutions = {8};
  m.unet.num_heads = 2;
  m.unet.head_channels = -1;
  m.unet.num_groups = 8;
  return m;
}

ModelOptions small_dit() {
  ModelOptions m;
  m.arch = ModelArch::dit;
  m.in_channels = 3;
  m.image_size = 16;
  m.num_classes = 10;
  m.dit.depth = 2;
  m.dit.hidden_size = 64;
  m.dit.num_heads = 4;
  m.dit.patch_size = 2;
  return m;
}

// A network whose zero-initialised output layers got small random weights, so that its
// output depends on every layer.
std::shared_ptr<DiffusionNet> generic_model(const ModelOptions& m) {
  torch::manual_seed(11);
  auto net = make_model(m);
  torch::NoGradGuard no_grad;
  for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.02);
  return net;
}

Precond precond_on(const ModelOptions& m, const torch::Device& device) {
  DiffusionOptions d;
  Precond p(generic_model(m), d.prediction, NoiseSchedule::from_options(d));
  p->to(device);
  p->eval();
  return p;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU, torch::kFloat32) - b.to(torch::kCPU, torch::kFloat32)).abs().max().item<double>();
}

void expect_forward_matches(const ModelOptions& m) {
  auto cpu = precond_on(m, torch::kCPU);
  auto gpu = precond_on(m, torch::kCUDA);
  torch::manual_seed(5);
  const auto x = torch::randn({4, 3, 16, 16});
  const auto sigma = torch::tensor({0.1, 1.0, 5.0, 40.0}, torch::kFloat32);
  const auto labels = torch::tensor({0, 3, 7, 10}, torch::kLong);  // 10: the null class
  torch::NoGradGuard no_grad;
  const auto a = cpu->denoise(x, sigma, labels);
  const auto b = gpu->denoise(x.cuda(), sigma.cuda(), labels.cuda());
  EXPECT_LT(max_abs_diff(a, b), 1e-4);
}

GenerateOptions generation(const std::string& sampler) {
  GenerateOptions g;
  g.sampler = sampler;
  g.steps = 10;
  g.cfg = 2.0;
  g.seeds = {0, 1, 2, 3, 4, 5};
  g.batch_size = 4;  // a full batch and a partial one
  g.sampler_options.clip_denoised = 1.0;
  g.sampler_options.eta = sampler == "ddim" ? 0.5 : 1.0;
  return g;
}

}  // namespace

TEST_F(Cuda, UNetDenoiserMatchesTheCpu) { expect_forward_matches(small_unet()); }

TEST_F(Cuda, DiTDenoiserMatchesTheCpu) { expect_forward_matches(small_dit()); }

TEST_F(Cuda, EverySamplerMatchesTheCpu) {
  auto cpu = precond_on(small_unet(), torch::kCPU);
  auto gpu = precond_on(small_unet(), torch::kCUDA);
  for (const auto& entry : sampler_table()) {
    if (std::string(entry.name) == "ddpm") continue;  // all T = 1000 steps: covered by ddim η = 1
    const auto g = generation(entry.name);
    const auto a = generate_samples(cpu, g);
    const auto b = generate_samples(gpu, g);
    EXPECT_LT(max_abs_diff(a, b), 2e-3) << entry.name;
  }
}

TEST_F(Cuda, GraphCapturedSamplingMatchesEager) {
  auto gpu = precond_on(small_unet(), torch::kCUDA);
  for (const char* sampler : {"euler", "heun", "dpmpp2m", "ddim"}) {
    auto g = generation(sampler);
    const auto eager = generate_samples(gpu, g);
    g.cuda_graph = true;
    int64_t calls = 0;
    const auto graphed = generate_samples(gpu, g, [&](const SamplerStep&) { ++calls; });
    EXPECT_LT(max_abs_diff(eager, graphed), 1e-5) << sampler;
    EXPECT_EQ(calls, find_sampler(sampler).nfe(10, g.sampler_options) * 2) << sampler;
  }
}

TEST_F(Cuda, GraphCapturedSamplingWithBf16MatchesEagerBf16) {
  auto gpu = precond_on(small_dit(), torch::kCUDA);
  auto g = generation("dpmpp2m");
  g.bf16 = true;
  const auto eager = generate_samples(gpu, g);
  g.cuda_graph = true;
  const auto graphed = generate_samples(gpu, g);
  EXPECT_LT(max_abs_diff(eager, graphed), 1e-3);
}

TEST_F(Cuda, DpsMatchesTheCpu) {
  OperatorOptions o;
  o.name = "inpaint_box";
  o.box_size = 6;
  auto op = make_operator(o, 3, 16);
  DpsOptions dps;
  dps.zeta = 0.5;
  dps.clip_denoised = 1.0;
  torch::manual_seed(2);
  const auto clean = torch::rand({2, 3, 16, 16}) * 2 - 1;
  const auto y = op->forward(clean);
  DiffusionOptions d;
  const auto sigmas = sampling_sigmas(NoiseSchedule::from_options(d), 10, TimestepSpacing::trailing);
  auto run = [&](const torch::Device& device) {
    auto precond = precond_on(small_unet(), device);
    SeededNoise noise({0, 1}, device);
    const auto x = noise.randn({3, 16, 16}) * sigmas.front();
    const auto labels = torch::tensor({1, 2}, torch::kLong).to(device);
    const auto gpu_op = make_operator(o, 3, 16);
    return sample_dps(make_denoiser(precond, labels), *gpu_op, y.to(device), x, sigmas, noise, dps);
  };
  EXPECT_LT(max_abs_diff(run(torch::kCPU), run(torch::kCUDA)), 2e-3);
}

TEST_F(Cuda, FusedAdamWMatchesThePerTensorLoop) {
  torch::manual_seed(4);
  std::vector<torch::Tensor> a{torch::randn({64, 32}, torch::kCUDA).requires_grad_(),
                               torch::randn({32}, torch::kCUDA).requires_grad_()};
  std::vector<torch::Tensor> b{a[0].detach().clone().requires_grad_(), a[1].detach().clone().requires_grad_()};
  TrainOptions o;
  o.lr = 1e-2;
  o.weight_decay = 0.05;
  TrainingOptimizer fused(a, o, true), loop(b, o, false);
  for (int step = 0; step < 5; ++step) {
    for (auto* pair : {&a, &b}) {
      torch::Tensor loss = torch::zeros({}, torch::kCUDA);
      for (const auto& p : *pair) loss = loss + (p.square() * 0.5 + p.cos()).sum();
      loss.backward();
    }
    fused.step();
    loop.step();
    fused.zero_grad();
    loop.zero_grad();
  }
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LT(max_abs_diff(a[i], b[i]), 1e-5);
}
