#include "diffuse/sampling/heun.h"

#include <algorithm>
#include <cmath>

#include "diffuse/sampling/sampler_common.h"

namespace diffuse {

int64_t heun_nfe(int64_t steps, bool ends_at_zero) { return 2 * steps - (ends_at_zero ? 1 : 0); }

torch::Tensor sample_heun(const Denoiser& denoiser, torch::Tensor x,
                          const std::vector<double>& sigmas, SeededNoise& noise,
                          const SamplerOptions& options, const SamplerCallback& progress) {
  check_ode_sampler_inputs("heun", x, sigmas, noise, options.s_churn == 0.0);
  const int64_t steps = static_cast<int64_t>(sigmas.size()) - 1;
  SamplerDenoiser denoise(denoiser, options, progress, heun_nfe(steps, sigmas.back() == 0.0));
  const double gamma_max = std::min(options.s_churn / static_cast<double>(steps), std::sqrt(2.0) - 1.0);
  for (int64_t i = 0; i < steps; ++i) {
    const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
    // Algorithm 2 lines 4-6: raise the noise level to σ̂ by adding fresh noise.
    const bool churn = options.s_tmin <= sigma && sigma <= options.s_tmax;
    const double gamma = churn ? gamma_max : 0.0;
    const double sigma_hat = sigma * (1.0 + gamma);
    if (gamma > 0.0)
      x = x + noise.randn_like(x) * (std::sqrt(sigma_hat * sigma_hat - sigma * sigma) * options.s_noise);
    // Lines 7-8: Euler step from σ̂ to σ_{i+1}.
    const auto d = to_d(x, sigma_hat, denoise(x, sigma_hat));
    auto x_next = x + d * (sigma_next - sigma_hat);
    // Lines 9-11: second-order correction, skipped into σ = 0 where d' is undefined.
    if (sigma_next > 0.0) {
      const auto d_next = to_d(x_next, sigma_next, denoise(x_next, sigma_next));
      x_next = x + (d + d_next) * (0.5 * (sigma_next - sigma_hat));
    }
    x = denoise.correct(x_next, sigma_next, noise);
  }
  return x;
}

}  // namespace diffuse
