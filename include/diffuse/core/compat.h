#pragma once
// The one place where LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (CUDA builds) differ.
// Everything else in diffuse calls these helpers instead of the versioned APIs.
#include <torch/torch.h>

#include <vector>

#if TORCH_VERSION_MAJOR >= 2
#define DIFFUSE_TORCH2 1
#else
#define DIFFUSE_TORCH2 0
#endif

namespace c10d {
class ProcessGroup;
class Backend;
}  // namespace c10d

namespace diffuse::compat {

// The c10d class whose collectives the Gloo and NCCL process groups implement (and the
// Communicator calls): c10d::ProcessGroup on 1.13, c10d::Backend on 2.x.
#if DIFFUSE_TORCH2
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif

// RAII guard: bf16 CUDA autocast inside the scope when `enabled`, restored afterwards.
class CudaAutocastGuard {
 public:
  explicit CudaAutocastGuard(bool enabled);
  ~CudaAutocastGuard();
  CudaAutocastGuard(const CudaAutocastGuard&) = delete;
  CudaAutocastGuard& operator=(const CudaAutocastGuard&) = delete;

 private:
  bool previous_;
  bool changed_;
};

// softmax(q kᵀ / √d) v over the last two dims of [B, H, N, d] tensors: the fused
// flash / memory-efficient kernel on 2.x, written out on 1.13 (same result).
torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                           const torch::Tensor& v);
// The written-out form, exposed so tests can compare it with the fused kernel.
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v);

// True when the fused multi-tensor AdamW kernel (at::_fused_adamw_) runs on `device`:
// LibTorch 2.x, on CUDA and on the CPU.
bool has_fused_adamw(const torch::Device& device);

// One fused AdamW step (Loshchilov & Hutter 2019, Algorithm 2; the update rule of
// torch::optim::AdamW) over lists of same-device tensors; throws where unavailable.
// `steps` are 0-dim float32 tensors on the device, already incremented; `lr` is a 0-dim
// float32 tensor so that a CUDA graph replays with the current value.
void fused_adamw(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& grads,
                 const std::vector<torch::Tensor>& exp_avgs,
                 const std::vector<torch::Tensor>& exp_avg_sqs,
                 const std::vector<torch::Tensor>& steps, const torch::Tensor& lr, double beta1,
                 double beta2, double weight_decay, double eps);

// The state torch::optim::AdamW keeps for `param` (its map key differs between versions),
// created with zero moments at step 0 when absent.
torch::optim::AdamWParamState& adamw_param_state(torch::optim::AdamW& optimizer,
                                                 const torch::Tensor& param);

// Every tensor of `tensors` += 1, as one multi-tensor op where possible.
void foreach_add_one(const std::vector<torch::Tensor>& tensors);

// ema ← ema + w (param − ema) with w a 0-dim tensor on the device (no host value baked into
// a captured CUDA graph).
void ema_lerp_tensor(const std::vector<torch::Tensor>& ema, const std::vector<torch::Tensor>& params,
                     const torch::Tensor& weight);

// ema ← ema + (1 - decay)(param - ema) for every pair, as one multi-tensor op where possible.
void ema_lerp(std::vector<torch::Tensor>& ema, const std::vector<torch::Tensor>& params,
              double weight);

// LibTorch version as "major.minor.patch".
std::string torch_version();

bool cuda_available();

// Peak memory in bytes since the process started: for CUDA devices the caching allocator's
// peak of allocated bytes (CUDA builds); otherwise the process's peak resident set size.
int64_t peak_memory_bytes(const torch::Device& device);

}  // namespace diffuse::compat
