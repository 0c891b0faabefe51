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

namespace {

std::vector<torch::Tensor> detached_parameters(const torch::nn::Module& model) {
  std::vector<torch::Tensor> params;
  for (const auto& p : model.parameters()) params.push_back(p.detach());
  return params;
}

void copy_buffers(torch::nn::Module& to, const torch::nn::Module& from) {
  auto ours = to.buffers();
  auto theirs = from.buffers();
  for (size_t i = 0; i < ours.size(); ++i) ours[i].copy_(theirs[i]);
}

}  // namespace

void Ema::update(const torch::nn::Module& model, int64_t step) {
  torch::NoGradGuard no_grad;
  compat::ema_lerp(average_params_, detached_parameters(model), 1.0 - decay_at(step));
  copy_buffers(*average_, model);
}

void Ema::update(const torch::nn::Module& model, const torch::Tensor& weight) {
  torch::NoGradGuard no_grad;
  compat::ema_lerp_tensor(average_params_, detached_parameters(model), weight);
  copy_buffers(*average_, model);
}

void Ema::copy_from(const torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  auto theirs = model.parameters();
  for (size_t i = 0; i < average_params_.size(); ++i) average_params_[i].copy_(theirs[i]);
  copy_buffers(*average_, model);
}

}  // namespace diffuse
