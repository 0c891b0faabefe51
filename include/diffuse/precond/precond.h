#pragma once
// Preconditioning (DESIGN §3, Karras et al. 2022 Table 1): each prediction type is only a
// choice of c_skip, c_out, c_in, c_noise, and D(x; σ) = c_skip x + c_out F(c_in x, c_noise, y).
// Samplers, losses and DPS see only D.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>

#include "diffuse/models/diffusion_net.h"
#include "diffuse/precond/denoiser.h"
#include "diffuse/schedule/noise_schedule.h"

namespace diffuse {

struct Scalings {
  torch::Tensor c_skip, c_out, c_in, c_noise;  // c_noise [B]; the others [B, 1, 1, 1]
};

// sigma: [B] float tensor. `schedule` supplies σ_d (EDM) and t(σ) (VP c_noise).
Scalings compute_scalings(Prediction prediction, const torch::Tensor& sigma,
                          const NoiseSchedule& schedule);

struct PrecondOutput {
  torch::Tensor denoised;   // D(x; σ)
  torch::Tensor net_output; // F's first C channels (the prediction type's own target space)
  torch::Tensor var_interp; // learn_sigma: F's second C channels (v of Nichol & Dhariwal); else undefined
};

// Consistency models (Song et al. 2023, eq. 3: the boundary condition f(x, σ_min) = x), for
// any preconditioning: f(x; σ) = x + r(σ) (D(x; σ) − x), r(σ) = clamp((σ − σ_min)/σ, 0, 1),
// i.e. c_skip' = 1 − r + r c_skip and c_out' = r c_out. f(x, σ_min) = x exactly, and f → D
// for σ ≫ σ_min, so a student initialised from its teacher starts as the teacher's one-step
// denoiser (for EDM preconditioning Song et al.'s c_skip, c_out behave alike).
torch::Tensor consistency_output(const torch::Tensor& x, const torch::Tensor& sigma,
                                 const torch::Tensor& denoised, double sigma_min);

class PrecondImpl : public torch::nn::Module {
 public:
  // `consistency_sigma_min` set: the model is a consistency model whose D is f(x; σ) above.
  PrecondImpl(std::shared_ptr<DiffusionNet> net, Prediction prediction, NoiseSchedule schedule,
              std::optional<double> consistency_sigma_min = std::nullopt);

  // labels: [B] int64 (null label allowed) or undefined for unconditional models.
  PrecondOutput forward(const torch::Tensor& x, const torch::Tensor& sigma,
                        const torch::Tensor& labels);
  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                        const torch::Tensor& labels) {
    return forward(x, sigma, labels).denoised;
  }

  DiffusionNet& net() { return *net_; }
  std::shared_ptr<DiffusionNet> net_ptr() const { return net_; }
  Prediction prediction() const { return prediction_; }
  const NoiseSchedule& schedule() const { return schedule_; }
  const std::optional<double>& consistency_sigma_min() const { return consistency_sigma_min_; }
  // Where the network's weights are (the CPU for a network without any, e.g. an exact one).
  torch::Device device() const;

 private:
  std::shared_ptr<DiffusionNet> net_;
  Prediction prediction_;
  NoiseSchedule schedule_;
  std::optional<double> consistency_sigma_min_;
};
TORCH_MODULE(Precond);

// The model's denoiser for fixed labels (per sample; undefined = unconditional model) with
// classifier-free guidance (Ho & Salimans 2022): D = D_u + w (D_c - D_u), the conditional and
// null-label batches in one network call; w = 1 is the plain conditional model (one call),
// w = 0 the unconditional one. Guidance throws ConfigError if the model has no null class or
// no labels are given. With `reverse_variance` (learned-variance models), each output also
// carries log Σ_θ at t(σ) (of the conditional half under guidance, as in DiT's sampling code),
// which the DDPM step draws its noise with.
Denoiser make_model_denoiser(Precond precond, torch::Tensor labels, double guidance = 1.0,
                             bool reverse_variance = false);

// make_model_denoiser's x̂0 alone, for callers that need no auxiliary output.
DenoiserFn make_denoiser(Precond precond, torch::Tensor labels);
DenoiserFn make_cfg_denoiser(Precond precond, torch::Tensor labels, double guidance);

}  // namespace diffuse
