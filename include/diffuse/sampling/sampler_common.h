#pragma once
// Helpers shared by the samplers and by DPS (DESIGN §3). Each formula lives here once.
#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "diffuse/core/seeded_noise.h"
#include "diffuse/precond/precond.h"
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// Probability-flow ODE derivative dx/dσ = (x - D(x; σ)) / σ (Karras et al. 2022 eq. 3 with
// σ(t) = t). `sigma` is a host double.
torch::Tensor to_d(const torch::Tensor& x, double sigma, const torch::Tensor& denoised);

// Splits a step σ → σ' into a deterministic part down to σ_down and fresh noise σ_up:
// σ_up = min(σ', η √(σ'²(σ² - σ'²)/σ²)), σ_down = √(σ'² - σ_up²). η = 1 is the DDPM
// ancestral step (posterior variance β̃), η = 0 the deterministic DDIM/Euler step.
struct AncestralSigmas {
  double down;
  double up;
};
AncestralSigmas ancestral_sigmas(double sigma, double sigma_next, double eta);

// One ancestral step from σ to σ' given D(x; σ): an Euler step down to σ_down, then
// σ_up · noise_scale · ε with ε from `noise` (drawn only when σ_up > 0). With η = 1 this is
// DDPM's posterior step (Ho et al. 2020 eq. 6-7), with η ∈ [0, 1] DDIM's (Song et al. 2021
// eq. 12 and 16), both rewritten in σ-space; η = 0 performs exactly the float ops of an
// Euler step to σ'.
torch::Tensor ancestral_step(const torch::Tensor& x, double sigma, double sigma_next,
                             const torch::Tensor& denoised, double eta, SeededNoise& noise,
                             double noise_scale = 1.0);

// One unadjusted Langevin step at noise level σ (Song & Ermon 2019, Algorithm 1 line 6):
// x + (α/2) ∇log p_σ(x) + √α z, with the score ∇log p_σ(x) = (D(x; σ) - x)/σ² (Tweedie).
// `alpha` broadcasts against x (a scalar, or [B, 1, ...] per sample); z is the fresh noise.
torch::Tensor langevin_step(const torch::Tensor& x, double sigma, const torch::Tensor& denoised,
                            const torch::Tensor& alpha, const torch::Tensor& z);

// A [B] tensor filled with σ on x's device: float64 when x is float64 (so analytic tests
// see the exact σ), float32 otherwise.
torch::Tensor sigma_batch(const torch::Tensor& x, double sigma);

// Throws ConfigError unless `sigmas` holds at least two values, strictly decreasing, finite,
// with only the last allowed to be 0; throws Error unless x's batch matches the noise
// streams. `sampler` names the caller in the message.
void check_sampler_inputs(const char* sampler, const torch::Tensor& x,
                          const std::vector<double>& sigmas, const SeededNoise& noise);

// The check of the ODE samplers (euler, heun, dpmpp2m, ddim), which also integrate the
// probability-flow ODE backwards, from data towards noise (DDIM inversion, sampling/invert.h):
// besides the lists above they take a strictly increasing list of σ > 0, but only for a
// `deterministic` step (eta 0, no churn); a stochastic step has no inverse.
void check_ode_sampler_inputs(const char* sampler, const torch::Tensor& x, const std::vector<double>& sigmas,
                              const SeededNoise& noise, bool deterministic);

// x̂0 clamped to [-clip, clip] (the data range); clip <= 0 leaves it as it is. The one
// convention for clamping x̂0, shared by the samplers and DPS.
torch::Tensor clamp_denoised(const torch::Tensor& denoised, double clip);

// The denoiser as every sampler sees it: evaluated at a host σ, x̂0 clamped to
// [-clip_denoised, clip_denoised] when that option is set, and each evaluation reported to
// the callback as a SamplerStep. The step index counts the calls of correct() (or
// end_step()), which every sampler makes once per step.
class SamplerDenoiser {
 public:
  SamplerDenoiser(const Denoiser& denoiser, const SamplerOptions& options,
                  const SamplerCallback& callback, int64_t nfe_total);
  // x̂0 = D(x; σ).
  torch::Tensor operator()(const torch::Tensor& x, double sigma) { return evaluate(x, sigma).denoised; }
  // The whole output: x̂0 with the model's auxiliary outputs (the learned reverse variance).
  DenoiserOutput evaluate(const torch::Tensor& x, double sigma);
  // x after the options' corrector at σ (predictor–corrector), or x itself when there is
  // none or σ = 0; ends the step. Samplers call it after every step, with σ the level the
  // step ended at.
  torch::Tensor correct(const torch::Tensor& x, double sigma, SeededNoise& noise);
  // Ends a step without correcting (samplers that are not predictors).
  void end_step() { ++step_; }
  int64_t nfe_done() const { return nfe_done_; }

 private:
  const Denoiser& denoiser_;
  const SamplerOptions& options_;
  const SamplerCallback& callback_;
  int64_t nfe_total_;
  int64_t nfe_done_ = 0;
  int64_t step_ = 0;
};

}  // namespace diffuse
