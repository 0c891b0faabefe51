#include "diffuse/sampling/reverse_sde.h"

#include <cmath>

#include "diffuse/sampling/sampler_common.h"

namespace diffuse {
namespace {

// One reverse-SDE step σ → σ' > 0 given D(x; σ), in either form (reverse_sde.h).
using SdeStep = torch::Tensor (*)(const torch::Tensor& x, double sigma, double sigma_next,
                                  const torch::Tensor& denoised, SeededNoise& noise);

torch::Tensor ve_step(const torch::Tensor& x, double sigma, double sigma_next,
                      const torch::Tensor& denoised, SeededNoise& noise) {
  const double variance = sigma * sigma - sigma_next * sigma_next;  // g² Δt
  const auto score = (denoised - x) / (sigma * sigma);
  return x + variance * score + std::sqrt(variance) * noise.randn_like(x);
}

torch::Tensor vp_step(const torch::Tensor& x, double sigma, double sigma_next,
                      const torch::Tensor& denoised, SeededNoise& noise) {
  const double alpha_bar = NoiseSchedule::alpha_bar_from_sigma(sigma);
  const double alpha_bar_next = NoiseSchedule::alpha_bar_from_sigma(sigma_next);
  const double beta = 1.0 - alpha_bar / alpha_bar_next;  // β Δt
  const double scale = std::sqrt(alpha_bar);
  const auto x_t = scale * x;
  const auto score = (scale * denoised - x_t) / (1.0 - alpha_bar);
  const auto x_t_next = (1.0 + 0.5 * beta) * x_t + beta * score + std::sqrt(beta) * noise.randn_like(x);
  return x_t_next / std::sqrt(alpha_bar_next);
}

torch::Tensor run_sde(const char* name, SdeStep step, const Denoiser& denoiser, torch::Tensor x,
                      const std::vector<double>& sigmas, SeededNoise& noise,
                      const SamplerOptions& options, const SamplerCallback& progress) {
  check_sampler_inputs(name, x, sigmas, noise);
  const int64_t steps = static_cast<int64_t>(sigmas.size()) - 1;
  SamplerDenoiser denoise(denoiser, options, progress, steps);
  for (int64_t i = 0; i < steps; ++i) {
    const double sigma = sigmas[i], sigma_next = sigmas[i + 1];
    const auto denoised = denoise(x, sigma);
    x = sigma_next == 0.0 ? denoised : step(x, sigma, sigma_next, denoised, noise);
    x = denoise.correct(x, sigma_next, noise);
  }
  return x;
}

}  // namespace

torch::Tensor sample_sde_ve(const Denoiser& denoiser, torch::Tensor x,
                            const std::vector<double>& sigmas, SeededNoise& noise,
                            const SamplerOptions& options, const SamplerCallback& progress) {
  return run_sde("sde_ve", ve_step, denoiser, std::move(x), sigmas, noise, options, progress);
}

torch::Tensor sample_sde_vp(const Denoiser& denoiser, torch::Tensor x,
                            const std::vector<double>& sigmas, SeededNoise& noise,
                            const SamplerOptions& options, const SamplerCallback& progress) {
  return run_sde("sde_vp", vp_step, denoiser, std::move(x), sigmas, noise, options, progress);
}

}  // namespace diffuse
