#include "diffuse/core/compat.h"

#include <ATen/autocast_mode.h>

#include <sys/resource.h>

#include <sstream>

// Debian's CPU LibTorch ships c10/cuda headers that do not compile (they need a CUDA build's
// generated macros), so the CUDA allocator is used only when CMake found a CUDA LibTorch.
#if defined(DIFFUSE_WITH_CUDA)
#include <c10/cuda/CUDACachingAllocator.h>
#define DIFFUSE_HAS_CUDA_ALLOCATOR 1
#else
#define DIFFUSE_HAS_CUDA_ALLOCATOR 0
#endif

#if DIFFUSE_TORCH2
#include <ATen/ops/_fused_adamw.h>
#endif

namespace diffuse::compat {
namespace {

// Turn CUDA autocast on (bf16) or off for the current thread. File-local: the rest of
// diffuse switches autocast only through CudaAutocastGuard, which restores it.
void set_cuda_autocast(bool enabled) {
#if DIFFUSE_TORCH2
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
#endif
}

bool cuda_autocast_enabled() {
#if DIFFUSE_TORCH2
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}

}  // namespace

CudaAutocastGuard::CudaAutocastGuard(bool enabled)
    : previous_(cuda_autocast_enabled()), changed_(enabled != previous_) {
  if (changed_) set_cuda_autocast(enabled);
}

CudaAutocastGuard::~CudaAutocastGuard() {
  if (changed_) {
    set_cuda_autocast(previous_);
    // Autocast caches casted weights; drop them when leaving the outermost region.
    if (!previous_) at::autocast::clear_cache();
  }
}

torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto weights = torch::matmul(q * scale, k.transpose(-2, -1)).softmax(-1);
  return torch::matmul(weights, v);
}

torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& v) {
#if DIFFUSE_TORCH2
  return at::scaled_dot_product_attention(q, k, v);
#else
  return reference_attention(q, k, v);
#endif
}

bool has_fused_adamw(const torch::Device& device) {
#if DIFFUSE_TORCH2
  return device.is_cuda() || device.is_cpu();
#else
  (void)device;
  return false;
#endif
}

void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                 const std::vector<torch::Tensor>& exp_avgs,
                 const std::vector<torch::Tensor>& exp_avg_sqs,
                 const std::vector<torch::Tensor>& steps, const torch::Tensor& lr, double beta1,
                 double beta2, double weight_decay, double eps) {
#if DIFFUSE_TORCH2
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, {}, steps, lr, beta1, beta2,
                    weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false);
#else
  (void)params; (void)grads; (void)exp_avgs; (void)exp_avg_sqs; (void)steps;
  (void)lr; (void)beta1; (void)beta2; (void)weight_decay; (void)eps;
  throw std::logic_error("fused AdamW needs LibTorch 2.x (this build: LibTorch " + torch_version() + ")");
#endif
}

torch::optim::AdamWParamState& adamw_param_state(torch::optim::AdamW& optimizer,
                                                 const torch::Tensor& param) {
#if DIFFUSE_TORCH2
  void* key = param.unsafeGetTensorImpl();
#else
  const std::string key = c10::guts::to_string(param.unsafeGetTensorImpl());
#endif
  auto& state = optimizer.state();
  auto it = state.find(key);
  if (it == state.end()) {
    auto fresh = std::make_unique<torch::optim::AdamWParamState>();
    fresh->step(0);
    fresh->exp_avg(torch::zeros_like(param, torch::MemoryFormat::Preserve));
    fresh->exp_avg_sq(torch::zeros_like(param, torch::MemoryFormat::Preserve));
    it = state.emplace(key, std::move(fresh)).first;
  }
  return static_cast<torch::optim::AdamWParamState&>(*it->second);
}

void foreach_add_one(const std::vector<torch::Tensor>& tensors) {
#if DIFFUSE_TORCH2
  at::_foreach_add_(tensors, 1.0);
#else
  for (const auto& t : tensors) t.add_(1.0);
#endif
}

void ema_lerp_tensor(const std::vector<torch::Tensor>& ema, const std::vector<torch::Tensor>& params,
                     const torch::Tensor& weight) {
  torch::NoGradGuard no_grad;
#if DIFFUSE_TORCH2
  auto delta = at::_foreach_sub(params, ema);
  at::_foreach_mul_(delta, weight);
  at::_foreach_add_(ema, delta);
#else
  for (size_t i = 0; i < ema.size(); ++i) ema[i].add_((params[i] - ema[i]) * weight);
#endif
}

void ema_lerp(std::vector<torch::Tensor>& ema, const std::vector<torch::Tensor>& params,
              double weight) {
  torch::NoGradGuard no_grad;
#if DIFFUSE_TORCH2
  at::_foreach_lerp_(ema, params, weight);
#else
  for (size_t i = 0; i < ema.size(); ++i) ema[i].lerp_(params[i], weight);
#endif
}

std::string torch_version() {
  std::ostringstream s;
  s << TORCH_VERSION_MAJOR << "." << TORCH_VERSION_MINOR << "." << TORCH_VERSION_PATCH;
  return s.str();
}

bool cuda_available() { return torch::cuda::is_available(); }

int64_t peak_memory_bytes(const torch::Device& device) {
#if DIFFUSE_HAS_CUDA_ALLOCATOR
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    // Index 0 of the per-pool stat arrays is the aggregate over all pools (StatType::AGGREGATE).
    return stats.allocated_bytes[0].peak;
  }
#endif
  (void)device;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace diffuse::compat
