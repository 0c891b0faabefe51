#include "diffuse/sampling/euler_ancestral.h"

#include "diffuse/sampling/sampler_common.h"

namespace diffuse {

torch::Tensor sample_euler_ancestral(const Denoiser& denoiser, torch::Tensor x,
                                     const std::vector<double>& sigmas, SeededNoise& noise,
                                     const SamplerOptions& options,
                                     const SamplerCallback& progress) {
  check_sampler_inputs("euler_a", x, sigmas, noise);
  const int64_t steps = static_cast<int64_t>(sigmas.size()) - 1;
  SamplerDenoiser denoise(denoiser, options, progress, steps);
  for (int64_t i = 0; i < steps; ++i) {
    x = ancestral_step(x, sigmas[i], sigmas[i + 1], denoise(x, sigmas[i]), options.eta, noise,
                       options.s_noise);
    x = denoise.correct(x, sigmas[i + 1], noise);
  }
  return x;
}

}  // namespace diffuse
