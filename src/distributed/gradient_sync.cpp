#include "diffuse/distributed/gradient_sync.h"

namespace diffuse {

GradientSync::GradientSync(std::vector<torch::Tensor> params, Communicator& communicator, int64_t bucket_bytes)
    : params_(std::move(params)), communicator_(communicator) {
  if (!communicator_.distributed()) return;
  const size_t n = params_.size();
  bucket_of_.assign(n, 0);
  slot_of_.assign(n, 0);
  staged_.assign(n, false);
  std::vector<std::vector<size_t>> groups;
  int64_t bytes = 0;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = n - 1 - k;
    const auto& p = params_[i];
    const bool new_dtype = !groups.empty() && p.scalar_type() != params_[groups.back().front()].scalar_type();
    if (groups.empty() || bytes >= bucket_bytes || new_dtype) {
      groups.emplace_back();
      bytes = 0;
    }
    groups.back().push_back(i);
    bytes += p.numel() * static_cast<int64_t>(p.element_size());
  }
  for (auto& members : groups) {
    Bucket bucket;
    int64_t numel = 0;
    for (const size_t i : members) {
      bucket_of_[i] = buckets_.size();
      slot_of_[i] = bucket.offsets.size();
      bucket.offsets.push_back(numel);
      numel += params_[i].numel();
    }
    const auto& first = params_[members.front()];
    bucket.flat = torch::zeros({numel + static_cast<int64_t>(members.size())}, first.options());
    bucket.members = std::move(members);
    buckets_.push_back(std::move(bucket));
  }
  for (size_t i = 0; i < n; ++i)
    hooks_.push_back(params_[i].register_hook([this, i](const torch::Tensor& grad) { on_gradient(i, grad); }));
}

GradientSync::~GradientSync() {
  for (size_t i = 0; i < hooks_.size(); ++i) params_[i].remove_hook(hooks_[i]);
}

void GradientSync::arm() { armed_ = communicator_.distributed(); }

// Hooks on a leaf run before its gradient is accumulated, so the step's full gradient is
// what .grad already holds (earlier micro-batches) plus this one.
void GradientSync::on_gradient(size_t param, const torch::Tensor& grad) {
  if (!armed_) return;
  torch::NoGradGuard no_grad;
  const auto& held = params_[param].grad();
  stage(param, held.defined() ? held + grad : grad);
  launch_in_order();
}

void GradientSync::stage(size_t param, const torch::Tensor& grad) {
  Bucket& bucket = buckets_[bucket_of_[param]];
  const size_t slot = slot_of_[param];
  const int64_t numel = params_[param].numel();
  auto values = bucket.flat.narrow(0, bucket.offsets[slot], numel);
  auto present = bucket.flat.narrow(0, bucket.flat.size(0) - static_cast<int64_t>(bucket.members.size()) +
                                           static_cast<int64_t>(slot), 1);
  if (grad.defined()) {
    values.copy_(grad.reshape({-1}));
    present.fill_(1);
  } else {
    values.zero_();
    present.zero_();
  }
  staged_[param] = true;
  ++bucket.arrived;
}

void GradientSync::launch_in_order() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].arrived == buckets_[next_launch_].members.size()) {
    Bucket& bucket = buckets_[next_launch_];
    bucket.pending = communicator_.all_reduce_sum_async(bucket.flat, "the gradient all-reduce (bucket " +
                                                                         std::to_string(next_launch_) + ")");
    ++next_launch_;
  }
}

void GradientSync::finish() {
  if (!communicator_.distributed()) return;
  torch::NoGradGuard no_grad;
  armed_ = false;
  for (size_t i = 0; i < params_.size(); ++i)
    if (!staged_[i]) stage(i, params_[i].grad());
  launch_in_order();
  const double ranks = static_cast<double>(communicator_.world_size());
  for (auto& bucket : buckets_) {
    bucket.pending.wait();
    const auto count = static_cast<int64_t>(bucket.members.size());
    const auto presence = bucket.flat.narrow(0, bucket.flat.size(0) - count, count).to(torch::kCPU);
    for (size_t slot = 0; slot < bucket.members.size(); ++slot) {
      auto& p = params_[bucket.members[slot]];
      if (presence[static_cast<int64_t>(slot)].item<double>() == 0.0) {
        p.mutable_grad() = torch::Tensor();
        continue;
      }
      const auto mean = bucket.flat.narrow(0, bucket.offsets[slot], p.numel()).view(p.sizes()) / ranks;
      if (p.grad().defined()) p.mutable_grad().copy_(mean);
      else p.mutable_grad() = mean;
    }
    bucket.arrived = 0;
  }
  std::fill(staged_.begin(), staged_.end(), false);
  next_launch_ = 0;
}

}  // namespace diffuse
