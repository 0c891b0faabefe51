#include "diffuse/sampling/dpmpp_2m.h"

#include <cmath>

#include "diffuse/sampling/sampler_common.h"

namespace diffuse {

torch::Tensor sample_dpmpp_2m(const Denoiser& denoiser, torch::Tensor x,
                              const std::vector<double>& sigmas, SeededNoise& noise,
                              const SamplerOptions& options, const SamplerCallback& progress) {
  check_ode_sampler_inputs("dpmpp2m", x, sigmas, noise, true);
  const int64_t steps = static_cast<int64_t>(sigmas.size()) - 1;
  SamplerDenoiser denoise(denoiser, options, progress, steps);
  torch::Tensor previous_denoised;
  double previous_h = 0.0;
  for (int64_t i = 0; i < steps; ++i) {
    const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
    const auto denoised = denoise(x, sigma);
    if (sigma_next == 0.0) {
      // λ_{i+1} = ∞: e^{-h} = 0 and the update is D itself (first order, as in k-diffusion).
      x = denoised;
      break;
    }
    const double h = std::log(sigma / sigma_next);  // λ_{i+1} - λ_i
    auto denoised_bar = denoised;
    if (previous_denoised.defined()) {
      const double r = previous_h / h;
      denoised_bar = denoised * (1.0 + 1.0 / (2.0 * r)) - previous_denoised * (1.0 / (2.0 * r));
    }
    x = denoise.correct(x * (sigma_next / sigma) - denoised_bar * std::expm1(-h), sigma_next, noise);
    previous_denoised = denoised;
    previous_h = h;
  }
  return x;
}

}  // namespace diffuse
