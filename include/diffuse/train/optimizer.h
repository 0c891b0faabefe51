#pragma once
// The trainer's AdamW (Loshchilov & Hutter 2019). Two ways to run one update rule:
// LibTorch's per-tensor torch::optim::AdamW, or one fused multi-tensor kernel
// (at::_fused_adamw_, LibTorch 2.x) over the very same state tensors. The fused step keeps no
// host-side values in the kernel's arguments (learning rate and step counts are device
// tensors), so it can be captured in a CUDA graph; checkpoints are interchangeable.
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "diffuse/train/train_options.h"

namespace diffuse {

class TrainingOptimizer {
 public:
  // `fused` needs compat::has_fused_adamw for the parameters' device; throws ConfigError if not.
  TrainingOptimizer(std::vector<torch::Tensor> params, const TrainOptions& options, bool fused);

  // The learning rate of the next step().
  void set_lr(double lr);
  // Drops the gradients (set to undefined).
  void zero_grad();
  // One AdamW update from the current gradients (parameters without a gradient are skipped
  // by the per-tensor path; the fused path needs every gradient).
  void step();

  bool fused() const { return fused_; }
  // The state container written to and read from checkpoints. After loading new state into
  // it, call state_loaded() before the next fused step.
  torch::optim::AdamW& adamw() { return *adamw_; }
  void state_loaded();

 private:
  void prepare_fused_state();

  std::vector<torch::Tensor> params_;
  TrainOptions options_;
  bool fused_;
  std::unique_ptr<torch::optim::AdamW> adamw_;
  // Fused path: views of adamw_'s state, step counters and the learning rate on the device.
  std::vector<torch::Tensor> exp_avgs_, exp_avg_sqs_, steps_;
  torch::Tensor lr_;
  bool fused_state_ready_ = false;
};

}  // namespace diffuse
