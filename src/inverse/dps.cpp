#include "diffuse/inverse/dps.h"

#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/sampling/sampler_common.h"

namespace diffuse {
namespace {

void check_inputs(const Operator& op, const torch::Tensor& y, const torch::Tensor& x,
                  const std::vector<double>& sigmas, const SeededNoise& noise,
                  const DpsOptions& options) {
  check_sampler_inputs("dps", x, sigmas, noise);
  if (sigmas.back() != 0.0)
    throw ConfigError("sampler dps: the last sigma must be 0 (x̂0 at the end), found " +
                      std::to_string(sigmas.back()));
  if (x.dim() != 4 || y.dim() < 1 || y.size(0) != x.size(0))
    throw Error("sampler dps: x " + shape_text(x.sizes()) + " must be [B, C, H, W] and y " +
                shape_text(y.sizes()) + " must have the same batch size");
  auto expected = op.measurement_shape();
  expected.insert(expected.begin(), x.size(0));
  if (!y.sizes().equals(expected))
    throw DataError("sample_dps: measurement " + shape_text(y.sizes()) + " does not fit operator '" +
                    op.name() + "', which measures " + shape_text(expected));
  if (options.method == DpsMethod::dps_linear && !op.is_linear())
    throw ConfigError("method 'dps_linear' needs a linear operator, but '" + op.name() +
                      "' is not; use method 'dps'");
  if (!(options.zeta >= 0.0)) throw ConfigError("zeta must be >= 0, found " + std::to_string(options.zeta));
  if (!(options.clip_denoised >= 0.0))
    throw ConfigError("clip_denoised must be >= 0 (0 = no clamp), found " + std::to_string(options.clip_denoised));
}


struct Guidance {
  torch::Tensor denoised;       // x̂0 = D(x̃_i; σ_i), detached
  torch::Tensor gradient;       // ∇_{x̃_i} ‖y - A(x̂0)‖² (dps) or ∇_{x̂0} of it (dps_linear)
  torch::Tensor residual_norm;  // ‖y - A(x̂0)‖ per sample, [B]
};

// Full DPS: backpropagate the per-sample squared residual through A and the denoiser. The
// graph exists only inside this call, so it lives for one step.
Guidance dps_guidance(const DenoiserFn& denoiser, const Operator& op, const torch::Tensor& y,
                      const torch::Tensor& x, double sigma, double clip) {
  torch::AutoGradMode enable_grad(true);
  auto x_in = x.detach().requires_grad_(true);
  auto denoised = clamp_denoised(denoiser(x_in, sigma_batch(x_in, sigma)), clip);
  auto squared_norm = (y - op.forward(denoised)).pow(2).flatten(1).sum(1);  // [B]
  // Samples are independent, so the gradient of the batch sum is each sample's own gradient.
  auto gradient = torch::autograd::grad({squared_norm.sum()}, {x_in})[0];
  return {denoised.detach(), gradient, squared_norm.detach().sqrt()};
}

// Jacobian-free DPS for linear A: ∇_{x̂0} ‖y - A x̂0‖² = -2 Aᵀ(y - A x̂0).
Guidance linear_guidance(const DenoiserFn& denoiser, const Operator& op, const torch::Tensor& y,
                         const torch::Tensor& x, double sigma, double clip) {
  torch::NoGradGuard no_grad;
  auto denoised = clamp_denoised(denoiser(x, sigma_batch(x, sigma)), clip);
  auto residual = y - op.forward(denoised);
  return {denoised, -2.0 * op.adjoint(residual), residual.flatten(1).norm(2, 1)};
}

}  // namespace

torch::Tensor sample_dps(const DenoiserFn& denoiser, const Operator& op, const torch::Tensor& y,
                         torch::Tensor x, const std::vector<double>& sigmas, SeededNoise& noise,
                         const DpsOptions& options, const SamplerCallback& progress) {
  check_inputs(op, y, x, sigmas, noise, options);
  const auto steps = static_cast<int64_t>(sigmas.size()) - 1;
  std::vector<int64_t> per_sample_shape(static_cast<size_t>(x.dim()), 1);
  per_sample_shape[0] = x.size(0);
  auto measurement = y.detach();
  x = x.detach();

  for (int64_t i = 0; i < steps; ++i) {
    const double sigma = sigmas[static_cast<size_t>(i)];
    const double sigma_next = sigmas[static_cast<size_t>(i) + 1];
    const Guidance g = options.method == DpsMethod::dps
                           ? dps_guidance(denoiser, op, measurement, x, sigma, options.clip_denoised)
                           : linear_guidance(denoiser, op, measurement, x, sigma, options.clip_denoised);
    if (progress) progress({i, sigma, x, g.denoised, i + 1, steps});

    torch::NoGradGuard no_grad;
    // x'_{i-1}: the DDPM posterior step (η = 1) written as the σ-space ancestral step.
    // Ho et al. 2020 eq. 6-7 in σ-space; the noise comes from `noise` only while σ' > 0.
    auto x_next = ancestral_step(x, sigma, sigma_next, g.denoised, 1.0, noise);

    // ζ_i ∇_{x_i} in VP space, converted to σ-space: ∇_{x_i} = ∇_{x̃_i} / √ᾱ_i, and the update
    // of x_{i-1} divided by √ᾱ_{i-1}; 1/ᾱ = 1 + σ².
    const double vp_to_sigma = std::sqrt((1.0 + sigma * sigma) * (1.0 + sigma_next * sigma_next));
    auto step = g.gradient * (options.zeta * vp_to_sigma);
    if (options.normalize_zeta)
      step = step / g.residual_norm.clamp_min(1e-12).to(step.dtype()).view(per_sample_shape);
    x = x_next - step;
  }
  return x;
}

namespace {

OptionSchema<DpsOptions> make_dps_schema() {
  using O = DpsOptions;
  OptionSchema<O> s;
  s.choice("method", &O::method, kDpsMethodNames,
           "dps (gradient through the network, Chung et al. 2023 Alg. 1) or dps_linear (linear operators, no network "
           "gradient)");
  s.field("zeta", &O::zeta, "step size ζ (or ζ' with normalize_zeta)",
          checks::custom<double>("(0, 1e6]", [](const double& v) {
            return v > 0.0 && v <= 1e6 ? std::string() : "must lie in (0, 1e6], found " + format_double(v);
          }));
  s.field("normalize_zeta", &O::normalize_zeta, "ζ_i = ζ' / ‖y - A(x̂0)‖ per sample");
  s.field("clip_denoised", &O::clip_denoised, "c > 0 clamps x̂0 to [-c, c] before the residual, as the DPS reference code does (1 for images in [-1, 1]); 0 turns it off",
          checks::range(0.0, 1000.0));
  return s;
}

}  // namespace

const OptionSchema<DpsOptions>& dps_options_schema() {
  return built_once<make_dps_schema>();
}

}  // namespace diffuse
