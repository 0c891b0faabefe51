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
  for (int64_t i = 0; i < steps; ++i)
    x = ancestral_step(x, sigmas[i], sigmas[i + 1], denoise(x, sigmas[i]), kDdpmEta, noise);
  return x;
}

}  // namespace diffuse
