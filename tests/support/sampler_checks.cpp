#include "support/sampler_checks.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

namespace diffuse::test {

std::vector<uint64_t> seed_range(uint64_t begin, uint64_t end) {
  std::vector<uint64_t> seeds;
  for (uint64_t s = begin; s < end; ++s) seeds.push_back(s);
  return seeds;
}

GaussianMixture three_modes_2d() {
  return GaussianMixture{
      {0.5, 0.3, 0.2}, {{-2.0, 0.0}, {2.0, 1.0}, {0.0, -2.5}}, {0.25, 0.36, 0.16}};
}

torch::Tensor run_sampler(const SamplerFn& sampler, const DenoiserFn& denoiser,
                          const std::vector<double>& sigmas, const std::vector<uint64_t>& seeds,
                          const SamplerOptions& options, torch::IntArrayRef sample_shape,
                          torch::Dtype dtype) {
  SeededNoise noise(seeds, torch::kCPU);
  const auto x = sigmas.front() * noise.randn(sample_shape, dtype);
  return sampler(denoiser, x, sigmas, noise, options, {});
}

torch::Tensor run_sampler(const SamplerFn& sampler, const GaussianMixture& mixture,
                          const std::vector<double>& sigmas, const std::vector<uint64_t>& seeds,
                          const SamplerOptions& options, torch::IntArrayRef sample_shape,
                          torch::Dtype dtype) {
  return run_sampler(sampler, mixture_denoiser(mixture), sigmas, seeds, options, sample_shape,
                     dtype);
}

// Checks the sample mean, covariance and mode weights of `samples` [N, 2] against the
// mixture, each within `z` standard errors.
void expect_mixture_moments(const GaussianMixture& mixture, const torch::Tensor& samples,
                            const std::string& label, double z, bool check_weights) {
  const double n = static_cast<double>(samples.size(0));
  const auto true_mean = mixture.mean();
  const auto true_cov = mixture.covariance();
  const auto mean = samples.mean(0);
  const auto centered = samples - mean;
  for (int64_t i = 0; i < 2; ++i) {
    const double se = std::sqrt(true_cov[i][i].item<double>() / n);
    EXPECT_NEAR(mean[i].item<double>(), true_mean[i].item<double>(), z * se)
        << label << " mean " << i;
    for (int64_t j = 0; j <= i; ++j) {
      const auto products = centered.select(1, i) * centered.select(1, j);
      const double cov = products.mean().item<double>();
      const double se_cov = std::sqrt(products.var().item<double>() / n);
      EXPECT_NEAR(cov, true_cov[i][j].item<double>(), z * se_cov) << label << " cov " << i << j;
    }
  }
  // Mode of each sample: its most responsible component at a tiny noise level.
  if (check_weights) {
    const auto modes = mixture_responsibilities(
                           mixture, samples, torch::full({samples.size(0)}, 1e-3, torch::kFloat64))
                           .argmax(1);
    for (int64_t k = 0; k < mixture.components(); ++k) {
      const double pi = mixture.weights[static_cast<size_t>(k)];
      const double fraction = (modes == k).to(torch::kFloat64).mean().item<double>();
      EXPECT_NEAR(fraction, pi, z * std::sqrt(pi * (1 - pi) / n)) << label << " weight " << k;
    }
  }
  std::printf("%s: mean (%.3f, %.3f) vs (%.3f, %.3f); var (%.3f, %.3f) vs (%.3f, %.3f)\n",
              label.c_str(), mean[0].item<double>(), mean[1].item<double>(),
              true_mean[0].item<double>(), true_mean[1].item<double>(),
              centered.select(1, 0).square().mean().item<double>(),
              centered.select(1, 1).square().mean().item<double>(), true_cov[0][0].item<double>(),
              true_cov[1][1].item<double>());
}

GaussianMixture smoothed_mixture(GaussianMixture mixture, double sigma) {
  for (auto& v : mixture.variances) v += sigma * sigma;
  return mixture;
}

}  // namespace diffuse::test
