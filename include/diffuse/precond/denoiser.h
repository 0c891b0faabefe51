#pragma once
// The denoiser D(x; σ) ≈ E[x0 | x] for x = x0 + σ n (DESIGN §3): what samplers, DPS, the
// losses and distillation see of a model.
#include <torch/torch.h>

#include <functional>
#include <type_traits>
#include <utility>

namespace diffuse {

// D(x; σ) ≈ E[x0 | x]. sigma: [B] on x's device.
using DenoiserFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& sigma)>;

// One evaluation's answer: x̂0 with what else the network predicts at that call, so that no
// state has to pass between calls.
struct DenoiserOutput {
  torch::Tensor denoised;  // D(x; σ)
  // Learned-variance models (Nichol & Dhariwal 2021 eq. 15): log Σ_θ(x_t, t) of the VP reverse
  // step t → t-1 at t(σ), shaped like x; undefined for every other model.
  torch::Tensor reverse_log_variance;
};

// A denoiser as samplers take it: built from a function returning x̂0 (a DenoiserFn or any
// lambda) or returning a DenoiserOutput.
class Denoiser {
 public:
  using OutputFn = std::function<DenoiserOutput(const torch::Tensor& x, const torch::Tensor& sigma)>;

  Denoiser() = default;
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Denoiser>>>
  Denoiser(F fn) : fn_(wrap(std::move(fn))) {}  // NOLINT: implicit, so lambdas pass as they are

  DenoiserOutput evaluate(const torch::Tensor& x, const torch::Tensor& sigma) const { return fn_(x, sigma); }
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& sigma) const {
    return fn_(x, sigma).denoised;
  }
  explicit operator bool() const { return static_cast<bool>(fn_); }

 private:
  template <class F>
  static OutputFn wrap(F fn) {
    using Result = std::invoke_result_t<F&, const torch::Tensor&, const torch::Tensor&>;
    if constexpr (std::is_same_v<std::decay_t<Result>, DenoiserOutput>) {
      return OutputFn(std::move(fn));
    } else {
      return [fn = std::move(fn)](const torch::Tensor& x, const torch::Tensor& sigma) mutable {
        return DenoiserOutput{fn(x, sigma), torch::Tensor()};
      };
    }
  }
  OutputFn fn_;
};

}  // namespace diffuse
