#pragma once
// Diffusion Posterior Sampling (Chung et al. 2023, "Diffusion Posterior Sampling for General
// Noisy Inverse Problems", Algorithm 1), in the σ-space of DESIGN §3.
//
// Algorithm 1 in VP space (x_i = √ᾱ_i x̃_i, x̃ the σ-space state, ᾱ_i = 1/(1+σ_i²)):
//   x̂0 = E[x0 | x_i]                          (here: the denoiser D(x̃_i; σ_i))
//   x'_{i-1} = DDPM posterior step of x_i towards x̂0 with fresh noise z
//   x_{i-1} = x'_{i-1} - ζ_i ∇_{x_i} ‖y - A(x̂0)‖²
// The DDPM posterior step (η = 1) is exactly the σ-space ancestral step
// (sampler_common.h), and the gradient w.r.t. the VP state is ∇_{x_i} = (1/√ᾱ_i) ∇_{x̃_i},
// so dividing the VP update by √ᾱ_{i-1} gives the σ-space update
//   x̃_{i-1} = x̃'_{i-1} - ζ_i / √(ᾱ_i ᾱ_{i-1}) · ∇_{x̃_i} ‖y - A(x̂0)‖².
// This conversion is used for every model (EDM too), so ζ has the paper's VP meaning always.
//
// Step size (per sample k, never over the batch):
//   normalize_zeta = false: ζ_i = zeta (Algorithm 1 as printed);
//   normalize_zeta = true:  ζ_i = zeta / ‖y_k - A(x̂0_k)‖ (the paper's §4 / App. C choice).
//     Then ζ_i ∇‖r‖² = 2 zeta ∇‖r‖: the reference code (DPS2022 condition_methods.py), which
//     steps by `scale` · ∇‖r‖, uses scale = 2 · zeta.
// The residual norm acts as a step size only (no gradient flows through it).
//
// method dps_linear (Jacobian-free, linear operators): x̂0's Jacobian ∂x̂0/∂x̃ is replaced by
// I, i.e. ∇_{x̃}‖r‖² by ∇_{x̂0}‖r‖² = -2 Aᵀ(y - A x̂0); no backpropagation through the denoiser.
// For a denoiser with Jacobian c·I the full DPS step is exactly c times this step.
#include <torch/torch.h>

#include <array>
#include <vector>

#include "diffuse/core/option_schema.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/inverse/operator.h"
#include "diffuse/precond/precond.h"
#include "diffuse/sampling/sampler.h"

namespace diffuse {

enum class DpsMethod { dps, dps_linear };
inline constexpr std::array<EnumName<DpsMethod>, 2> kDpsMethodNames{{
    {"dps", DpsMethod::dps},
    {"dps_linear", DpsMethod::dps_linear},
}};

struct DpsOptions {
  DpsMethod method = DpsMethod::dps;
  double zeta = 1.0;            // ζ (constant) or ζ' (normalised), VP-space meaning
  bool normalize_zeta = true;   // ζ_i = ζ' / ‖y - A(x̂0)‖ per sample
  // > 0: x̂0 is clamped to [-c, c] before it enters the residual and the ancestral step, as
  // the DPS reference code does for images in [-1, 1] (its clip_denoised). 0: no clamp.
  double clip_denoised = 0.0;
};

// denoiser: D(x; σ) (any DenoiserFn: a CFG wrapper works unchanged). op: A, built once.
// y: [B, op.measurement_shape()...]. x: [B, C, H, W], σ_0 times standard noise.
// sigmas: decreasing, ending in 0. noise: one generator per sample (batch B).
// One network evaluation per step (with autograd for method dps); progress after each.
// Returns the restored batch (no gradient attached). Throws ConfigError for dps_linear with
// a non-linear operator.
torch::Tensor sample_dps(const DenoiserFn& denoiser, const Operator& op, const torch::Tensor& y,
                         torch::Tensor x, const std::vector<double>& sigmas, SeededNoise& noise,
                         const DpsOptions& options, const SamplerCallback& progress = nullptr);

// Keys, valid values and meanings of DpsOptions (top-level keys of a restore task).
const OptionSchema<DpsOptions>& dps_options_schema();

}  // namespace diffuse
