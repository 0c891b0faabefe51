// The trainer's AdamW: the fused multi-tensor kernel (LibTorch 2.x) follows the update rule of
// torch::optim::AdamW, its state is interchangeable through checkpoints, and a build without
// the kernel refuses it by name. Also the device-tensor EMA update used inside CUDA graphs.
#include <gtest/gtest.h>

#include <sstream>

#include "diffuse/core/compat.h"
#include "diffuse/core/error.h"
#include "diffuse/train/ema.h"
#include "diffuse/train/optimizer.h"
#include "support/expect_text.h"

using namespace diffuse;

namespace {

TrainOptions adam_options() {
  TrainOptions o;
  o.lr = 3e-2;
  o.betas = {0.8, 0.95};
  o.weight_decay = 0.1;
  o.adam_eps = 1e-6;
  return o;
}

std::vector<torch::Tensor> fresh_params() {
  torch::manual_seed(7);
  return {torch::randn({3, 4}).requires_grad_(), torch::randn({5}).requires_grad_(),
          torch::randn({2, 2, 3, 3}).requires_grad_()};
}

// Gradients of a fixed quadratic-plus-sine loss, so every step sees a different gradient.
void backward(const std::vector<torch::Tensor>& params) {
  torch::Tensor loss = torch::zeros({});
  for (const auto& p : params) loss = loss + (p.square() + p.sin()).sum();
  loss.backward();
}

void run_steps(TrainingOptimizer& optimizer, const std::vector<torch::Tensor>& params, int steps) {
  for (int i = 0; i < steps; ++i) {
    optimizer.set_lr(3e-2 * (1.0 - 0.1 * i));  // a changing learning rate, as with warm-up
    optimizer.zero_grad();
    backward(params);
    optimizer.step();
  }
}

void expect_close(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_LT((a[i] - b[i]).abs().max().item<double>(), tol) << "parameter " << i;
}

}  // namespace

TEST(TrainingOptimizer, PerTensorPathIsLibTorchsAdamW) {
  auto ours = fresh_params();
  auto theirs = fresh_params();
  TrainingOptimizer optimizer(ours, adam_options(), /*fused=*/false);
  torch::optim::AdamW reference(theirs, torch::optim::AdamWOptions(3e-2).betas({0.8, 0.95}).weight_decay(0.1).eps(1e-6));
  run_steps(optimizer, ours, 1);
  reference.zero_grad();
  backward(theirs);
  reference.step();
  expect_close(ours, theirs, 1e-12);
}

TEST(TrainingOptimizer, FusedKernelFollowsTheAdamWUpdateRule) {
  if (!compat::has_fused_adamw(torch::kCPU))
    GTEST_SKIP() << "at::_fused_adamw_ needs LibTorch 2.x; this build has " << compat::torch_version();
  auto fused_params = fresh_params();
  auto loop_params = fresh_params();
  TrainingOptimizer fused(fused_params, adam_options(), /*fused=*/true);
  TrainingOptimizer loop(loop_params, adam_options(), /*fused=*/false);
  ASSERT_TRUE(fused.fused());
  run_steps(fused, fused_params, 6);
  run_steps(loop, loop_params, 6);
  // The same float32 arithmetic in another order: agreement to a few ulps of the weights.
  expect_close(fused_params, loop_params, 1e-5);
  for (const auto& p : fused_params)
    EXPECT_EQ(compat::adamw_param_state(fused.adamw(), p).step(), 6);
}

TEST(TrainingOptimizer, FusedStateRoundTripsThroughTheCheckpointFormat) {
  if (!compat::has_fused_adamw(torch::kCPU))
    GTEST_SKIP() << "at::_fused_adamw_ needs LibTorch 2.x; this build has " << compat::torch_version();
  auto straight = fresh_params();
  TrainingOptimizer through(straight, adam_options(), true);
  run_steps(through, straight, 5);

  // 3 fused steps, state saved as checkpoints save it, loaded into a per-tensor optimizer
  // over copies of the weights, 2 more steps there.
  auto first = fresh_params();
  TrainingOptimizer fused(first, adam_options(), true);
  run_steps(fused, first, 3);
  std::stringstream bytes;
  {
    torch::serialize::OutputArchive archive;
    fused.adamw().save(archive);
    archive.save_to(bytes);
  }
  std::vector<torch::Tensor> second;
  for (const auto& p : first) second.push_back(p.detach().clone().requires_grad_());
  TrainingOptimizer loop(second, adam_options(), false);
  {
    torch::serialize::InputArchive archive;
    archive.load_from(bytes);
    loop.adamw().load(archive);
    loop.state_loaded();
  }
  for (int i = 3; i < 5; ++i) {
    loop.set_lr(3e-2 * (1.0 - 0.1 * i));
    loop.zero_grad();
    backward(second);
    loop.step();
  }
  expect_close(second, straight, 1e-5);
}

TEST(TrainingOptimizer, RefusesTheFusedKernelWhereItDoesNotExist) {
  if (compat::has_fused_adamw(torch::kCPU))
    GTEST_SKIP() << "this build (LibTorch " << compat::torch_version() << ") has the fused kernel";
  const auto message = test::error_message<ConfigError>([] { TrainingOptimizer(fresh_params(), adam_options(), true); });
  EXPECT_CONTAINS(message, "train.fused_adamw");
  EXPECT_CONTAINS(message, compat::torch_version());
}

TEST(EmaUpdate, DeviceTensorWeightMatchesTheHostWeight) {
  torch::manual_seed(3);
  std::vector<torch::Tensor> params{torch::randn({4, 3}), torch::randn({7})};
  std::vector<torch::Tensor> by_scalar{torch::randn({4, 3}), torch::randn({7})};
  std::vector<torch::Tensor> by_tensor{by_scalar[0].clone(), by_scalar[1].clone()};
  const std::vector<torch::Tensor> before{by_scalar[0].clone(), by_scalar[1].clone()};
  compat::ema_lerp(by_scalar, params, 0.25);
  compat::ema_lerp_tensor(by_tensor, params, torch::full({}, 0.25));
  expect_close(by_tensor, by_scalar, 1e-6);
  // ema + w (θ − ema), checked against the formula itself.
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_LT((by_tensor[i] - (before[i] + 0.25 * (params[i] - before[i]))).abs().max().item<double>(), 1e-6);
}
