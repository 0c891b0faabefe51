#include "diffuse/train/optimizer.h"

#include "diffuse/core/compat.h"
#include "diffuse/core/error.h"

namespace diffuse {

TrainingOptimizer::TrainingOptimizer(std::vector<torch::Tensor> params, const TrainOptions& options,
                                     bool fused)
    : params_(std::move(params)), options_(options), fused_(fused) {
  if (params_.empty()) throw ConfigError("the model has no parameters to train");
  adamw_ = std::make_unique<torch::optim::AdamW>(
      params_, torch::optim::AdamWOptions(options.lr)
                   .betas({options.betas[0], options.betas[1]})
                   .weight_decay(options.weight_decay)
                   .eps(options.adam_eps));
  const auto device = params_.front().device();
  if (fused_ && !compat::has_fused_adamw(device))
    throw ConfigError("train.fused_adamw: the fused AdamW kernel needs LibTorch 2.x (this build: " +
                      compat::torch_version() + ", device " + device.str() + ")");
  if (fused_) lr_ = torch::full({}, options.lr, torch::TensorOptions(torch::kFloat32).device(device));
}

void TrainingOptimizer::set_lr(double lr) {
  for (auto& group : adamw_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  // A fill kernel queued on the stream: no host synchronisation, and a graph replayed after it
  // reads the new value.
  if (fused_) lr_.fill_(lr);
}

void TrainingOptimizer::zero_grad() {
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
}

void TrainingOptimizer::state_loaded() { fused_state_ready_ = false; }

void TrainingOptimizer::prepare_fused_state() {
  exp_avgs_.clear();
  exp_avg_sqs_.clear();
  steps_.clear();
  const auto step_options = torch::TensorOptions(torch::kFloat32).device(params_.front().device());
  for (const auto& p : params_) {
    auto& state = compat::adamw_param_state(*adamw_, p);
    exp_avgs_.push_back(state.exp_avg());
    exp_avg_sqs_.push_back(state.exp_avg_sq());
    steps_.push_back(torch::full({}, static_cast<double>(state.step()), step_options));
  }
  fused_state_ready_ = true;
}

void TrainingOptimizer::step() {
  torch::NoGradGuard no_grad;
  if (!fused_) {
    adamw_->step();
    return;
  }
  if (!fused_state_ready_) prepare_fused_state();
  std::vector<torch::Tensor> params, grads;
  params.reserve(params_.size());
  grads.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined())
      throw Error("fused AdamW: parameter " + std::to_string(i) +
                  " has no gradient (every parameter must take part in the loss)");
    params.push_back(params_[i]);
    grads.push_back(params_[i].grad());
  }
  compat::foreach_add_one(steps_);
  compat::fused_adamw(params, grads, exp_avgs_, exp_avg_sqs_, steps_, lr_, options_.betas[0],
                      options_.betas[1], options_.weight_decay, options_.adam_eps);
  // The host copy of the step count travels in checkpoints; keep it in step without a sync.
  for (const auto& p : params_) {
    auto& state = compat::adamw_param_state(*adamw_, p);
    state.step(state.step() + 1);
  }
}

}  // namespace diffuse
