#include "diffuse/sampling/ddpm.h"

#include "diffuse/sampling/sampler_common.h"

namespace diffuse {

torch::Tensor sample_ddpm(const DenoiserFn& denoiser, torch::Tensor x,
                          const std::vector<double>& sigmas, SeededNoise& noise,
                          const SamplerOptions& options, const SamplerProgress& progress) {
  check_sampler_inputs("ddpm", x, sigmas, noise);
  // η = 1: σ_up² = σ'²(σ² - σ'²)/σ² is β̃_t/ᾱ_{t-1}, the posterior variance in σ-space.
  constexpr double kDdpmEta = 1.0;
  const int64_t steps = static_cast<int64_t>(sigmas.size()) - 1;
  SamplerDenoiser denoise(denoiser, options, progress, steps);
  for (int64_t i = 0; i < steps; ++i) {
    const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
    const auto denoised = denoise(x, sigma);
    if (!options.ddpm_step_std || sigma_next == 0.0) {
      x = ancestral_step(x, sigma, sigma_next, denoised, kDdpmEta, noise);
    } else {
      // Learned variance: the posterior mean μ̃ is that of the fixed-variance step (σ_down
      // of η = 1); only the noise magnitude changes.
      const AncestralSigmas s = ancestral_sigmas(sigma, sigma_next, kDdpmEta);
      x = x + to_d(x, sigma, denoised) * (s.down - sigma) +
          noise.randn_like(x) * options.ddpm_step_std(sigma, sigma_next);
    }
    x = denoise.correct(x, sigma_next, noise);
  }
  return x;
}

}  // namespace diffuse
