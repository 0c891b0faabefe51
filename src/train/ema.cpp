#include "diffuse/train/ema.h"

#include <algorithm>

#include "diffuse/core/compat.h"

namespace diffuse {

Ema::Ema(std::shared_ptr<torch::nn::Module> average, double decay, bool warmup)
    : average_(std::move(average)), decay_(decay), warmup_(warmup) {
  for (auto& p : average_->parameters()) {
    p.set_requires_grad(false);
    average_params_.push_back(p);
  }
  average_->eval();
}

double Ema::decay_at(int64_t step) const {
  if (!warmup_) return decay_;
  return std::min(decay_, (1.0 + static_cast<double>(step)) / (10.0 + static_cast<double>(step)));
}

void Ema::update(const torch::nn::Module& model, int64_t step) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> params;
  for (const auto& p : model.parameters()) params.push_back(p.detach());
  compat::ema_lerp(average_params_, params, 1.0 - decay_at(step));
  auto ours = average_->buffers();
  auto theirs = model.buffers();
  for (size_t i = 0; i < ours.size(); ++i) ours[i].copy_(theirs[i]);
}

void Ema::copy_from(const torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  auto theirs = model.parameters();
  for (size_t i = 0; i < average_params_.size(); ++i) average_params_[i].copy_(theirs[i]);
  auto ours = average_->buffers();
  auto their_buffers = model.buffers();
  for (size_t i = 0; i < ours.size(); ++i) ours[i].copy_(their_buffers[i]);
}

}  // namespace diffuse
