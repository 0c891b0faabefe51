#include "diffuse/sampling/euler.h"

#include "diffuse/sampling/sampler_common.h"

namespace diffuse {

torch::Tensor sample_euler(const Denoiser& denoiser, torch::Tensor x,
                           const std::vector<double>& sigmas, SeededNoise& noise,
                           const SamplerOptions& options, const SamplerCallback& progress) {
  check_ode_sampler_inputs("euler", x, sigmas, noise, true);
  const int64_t steps = static_cast<int64_t>(sigmas.size()) - 1;
  SamplerDenoiser denoise(denoiser, options, progress, steps);
  for (int64_t i = 0; i < steps; ++i) {
    const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
    const auto d = to_d(x, sigma, denoise(x, sigma));
    x = denoise.correct(x + d * (sigma_next - sigma), sigma_next, noise);
  }
  return x;
}

}  // namespace diffuse
