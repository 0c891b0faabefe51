#include "diffuse/sampling/ddpm.h"

#include <cmath>

#include "diffuse/sampling/sampler_common.h"

namespace diffuse {

torch::Tensor sample_ddpm(const Denoiser& denoiser, torch::Tensor x,
                          const std::vector<double>& sigmas, SeededNoise& noise,
                          const SamplerOptions& options, const SamplerCallback& progress) {
  check_sampler_inputs("ddpm", x, sigmas, noise);
  // η = 1: σ_up² = σ'²(σ² - σ'²)/σ² is β̃_t/ᾱ_{t-1}, the posterior variance in σ-space.
  constexpr double kDdpmEta = 1.0;
  const int64_t steps = static_cast<int64_t>(sigmas.size()) - 1;
  SamplerDenoiser denoise(denoiser, options, progress, steps);
  for (int64_t i = 0; i < steps; ++i) {
    const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
    const auto out = denoise.evaluate(x, sigma);
    if (!out.reverse_log_variance.defined() || sigma_next == 0.0) {
      x = ancestral_step(x, sigma, sigma_next, out.denoised, kDdpmEta, noise);
    } else {
      // Learned variance (Nichol & Dhariwal 2021 eq. 15): the posterior mean μ̃ is that of the
      // fixed-variance step (σ_down of η = 1); only the noise magnitude changes. In σ-space
      // x̃_{t-1} = x_{t-1}/√ᾱ_{t-1}, so the VP std √Σ_θ becomes √(Σ_θ (1 + σ'²)).
      const AncestralSigmas s = ancestral_sigmas(sigma, sigma_next, kDdpmEta);
      const auto step_std = (0.5 * out.reverse_log_variance).exp() * std::sqrt(1.0 + sigma_next * sigma_next);
      x = x + to_d(x, sigma, out.denoised) * (s.down - sigma) + noise.randn_like(x) * step_std.to(x.scalar_type());
    }
    x = denoise.correct(x, sigma_next, noise);
  }
  return x;
}

}  // namespace diffuse
