#include "diffuse/sampling/langevin.h"

#include <algorithm>

#include "diffuse/core/error.h"
#include "diffuse/sampling/sampler_common.h"

namespace diffuse {

int64_t langevin_nfe(int64_t steps, const SamplerOptions& options) {
  return steps * options.langevin_steps + 1;
}

torch::Tensor sample_langevin(const Denoiser& denoiser, torch::Tensor x,
                              const std::vector<double>& sigmas, SeededNoise& noise,
                              const SamplerOptions& options, const SamplerCallback& progress) {
  check_sampler_inputs("langevin", x, sigmas, noise);
  if (options.langevin_steps < 1)
    throw ConfigError("sampler langevin: langevin_steps must be >= 1, found " +
                      std::to_string(options.langevin_steps));
  if (!(options.langevin_eps > 0))
    throw ConfigError("sampler langevin: langevin_eps must be > 0, found " + format_double(options.langevin_eps));
  const bool ends_at_zero = sigmas.back() == 0.0;
  const auto levels = static_cast<int64_t>(sigmas.size()) - (ends_at_zero ? 1 : 0);
  const double sigma_last = sigmas[static_cast<size_t>(levels - 1)];
  SamplerDenoiser denoise(denoiser, options, progress,
                          levels * options.langevin_steps + (ends_at_zero ? 1 : 0));
  for (int64_t i = 0; i < levels; ++i) {
    const double sigma = sigmas[static_cast<size_t>(i)];
    const double ratio = sigma / sigma_last;
    const auto alpha = torch::full({}, options.langevin_eps * ratio * ratio, x.options());
    for (int t = 0; t < options.langevin_steps; ++t)
      x = langevin_step(x, sigma, denoise(x, sigma), alpha, noise.randn_like(x));
    denoise.end_step();
  }
  return ends_at_zero ? denoise(x, sigma_last) : x;
}

torch::Tensor langevin_correct(const torch::Tensor& x_in, double sigma, int steps, double snr,
                               SamplerDenoiser& denoise, SeededNoise& noise) {
  auto x = x_in;
  std::vector<int64_t> per_sample(static_cast<size_t>(x.dim()), 1);
  per_sample[0] = x.size(0);
  for (int j = 0; j < steps; ++j) {
    const auto denoised = denoise(x, sigma);
    const auto z = noise.randn_like(x);
    const auto score_norm = ((denoised - x) / (sigma * sigma)).flatten(1).norm(2, 1);  // [B]
    const auto noise_norm = z.flatten(1).norm(2, 1);                                   // [B]
    const auto eps = 2.0 * (snr * noise_norm / score_norm.clamp_min(1e-30)).square();  // [B]
    // Algorithm 4's x + ε g + √(2ε) z is the Langevin step with α = 2ε.
    x = langevin_step(x, sigma, denoised, (2.0 * eps).view(per_sample), z);
  }
  return x;
}

}  // namespace diffuse
