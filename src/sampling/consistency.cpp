#include "diffuse/sampling/consistency.h"

#include <cmath>

#include "diffuse/sampling/sampler_common.h"

namespace diffuse {

torch::Tensor sample_consistency(const Denoiser& denoiser, torch::Tensor x,
                                 const std::vector<double>& sigmas, SeededNoise& noise,
                                 const SamplerOptions& options, const SamplerCallback& progress) {
  check_sampler_inputs("consistency", x, sigmas, noise);
  const int64_t steps = static_cast<int64_t>(sigmas.size()) - 1;
  SamplerDenoiser denoise(denoiser, options, progress, steps);
  auto x0 = denoise(x, sigmas.front());
  denoise.end_step();
  const double floor = options.consistency_sigma_min;
  for (int64_t i = 1; i < steps; ++i) {
    const double sigma = sigmas[static_cast<size_t>(i)];
    x = x0 + noise.randn_like(x0) * std::sqrt(std::max(sigma * sigma - floor * floor, 0.0));
    x0 = denoise(x, sigma);
    denoise.end_step();
  }
  return x0;
}

}  // namespace diffuse
