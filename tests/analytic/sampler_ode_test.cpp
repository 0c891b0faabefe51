// Deterministic samplers against the exact Gaussian / Gaussian-mixture denoiser (DESIGN §5):
// the closed-form probability-flow trajectory, convergence order, DDIM(η=0) == Euler and
// DPM-Solver++(2M) against Euler at equal NFE.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "diffuse/sampling/ddim.h"
#include "diffuse/sampling/dpmpp_2m.h"
#include "diffuse/sampling/euler.h"
#include "diffuse/sampling/heun.h"
#include "diffuse/schedule/noise_schedule.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "support/analytic_denoiser.h"
#include "support/sampler_checks.h"

using namespace diffuse;
using namespace diffuse::test;

namespace {

constexpr double kSigmaMin = 0.002;
constexpr double kSigmaMax = 80.0;

const std::vector<double> kMean{0.5, -1.0, 0.25, 2.0};
constexpr double kVariance = 0.25;

// A start point on the Gaussian's σ_max marginal: μ + √(s² + σ_max²) n, float64.
torch::Tensor gaussian_start(int64_t batch, double sigma_max) {
  SeededNoise noise(seed_range(0, static_cast<uint64_t>(batch)), torch::kCPU);
  return torch::tensor(kMean, torch::kFloat64) +
         std::sqrt(kVariance + sigma_max * sigma_max) * noise.randn({4}, torch::kFloat64);
}

// Karras grid of `steps` intervals from σ_max down to σ_min, without the final 0.
std::vector<double> karras_to_sigma_min(int steps) {
  auto sigmas = karras_sigmas(steps + 1, kSigmaMin, kSigmaMax);
  sigmas.pop_back();
  return sigmas;
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

// Max error at σ_min of `sampler` on the Gaussian flow with `steps` intervals.
double gaussian_flow_error(const SamplerFn& sampler, int steps) {
  const auto x_start = gaussian_start(16, kSigmaMax);
  const auto sigmas = karras_to_sigma_min(steps);
  SeededNoise noise(seed_range(0, 16), torch::kCPU);
  const auto x = sampler(mixture_denoiser(single_gaussian(kMean, kVariance)), x_start, sigmas,
                         noise, SamplerOptions{}, {});
  return max_abs_diff(x, gaussian_flow(x_start, kSigmaMax, kSigmaMin, kMean, kVariance));
}

}  // namespace

TEST(AnalyticDenoiser, MatchesTweedieScore) {
  // D(x; σ) = x + σ² ∇ log p_σ(x) (Tweedie), with the score from autograd on the density.
  const auto mixture = three_modes_2d();
  SeededNoise noise(seed_range(0, 8), torch::kCPU);
  const auto base = 3.0 * noise.randn({2}, torch::kFloat64);
  for (double sigma : {0.05, 0.7, 12.0}) {
    auto x = base.clone().requires_grad_(true);
    const auto log_p = mixture_log_density(mixture, x, sigma).sum();
    const auto score = torch::autograd::grad({log_p}, {x})[0];
    const auto tweedie = x.detach() + sigma * sigma * score;
    const auto denoised = mixture_denoise(mixture, base, torch::full({8}, sigma, torch::kFloat64));
    EXPECT_LT(max_abs_diff(denoised, tweedie), 1e-10) << "sigma " << sigma;
  }
}

TEST(AnalyticDenoiser, ImageShapedDataIsFlattenedPerSample) {
  const auto gaussian = single_gaussian(kMean, kVariance);
  const auto x = gaussian_start(3, 2.0);
  const auto sigma = torch::full({3}, 2.0, torch::kFloat64);
  const auto flat = mixture_denoise(gaussian, x, sigma);
  const auto image = mixture_denoise(gaussian, x.reshape({3, 1, 2, 2}), sigma);
  EXPECT_EQ(image.sizes(), (std::vector<int64_t>{3, 1, 2, 2}));
  EXPECT_TRUE(torch::equal(image.reshape({3, 4}), flat));
  // One Gaussian: D = μ + s²/(s² + σ²)(x - μ).
  const auto mu = torch::tensor(kMean, torch::kFloat64);
  EXPECT_LT(max_abs_diff(flat, mu + kVariance / (kVariance + 4.0) * (x - mu)), 1e-14);
}

TEST(AnalyticDenoiser, GaussianFlowSolvesTheOde) {
  // Central difference of the closed form against dx/dσ = (x - D(x; σ))/σ.
  const auto gaussian = single_gaussian(kMean, kVariance);
  const auto x0 = gaussian_start(4, 10.0);
  for (double sigma : {0.1, 1.0, 5.0}) {
    const double h = 1e-5 * sigma;
    const auto x = gaussian_flow(x0, 10.0, sigma, kMean, kVariance);
    const auto slope = (gaussian_flow(x0, 10.0, sigma + h, kMean, kVariance) -
                        gaussian_flow(x0, 10.0, sigma - h, kMean, kVariance)) / (2 * h);
    const auto d = (x - mixture_denoise(gaussian, x, torch::full({4}, sigma, torch::kFloat64))) / sigma;
    EXPECT_LT(max_abs_diff(slope, d), 1e-7) << "sigma " << sigma;
  }
}

TEST(OdeSamplers, EulerIsFirstOrderOnGaussianFlow) {
  std::vector<double> errors;
  for (int steps : {32, 64, 128}) errors.push_back(gaussian_flow_error(sample_euler, steps));
  for (size_t i = 1; i < errors.size(); ++i) {
    const double ratio = errors[i - 1] / errors[i];
    std::printf("euler: error %.3e -> %.3e, ratio %.3f\n", errors[i - 1], errors[i], ratio);
    EXPECT_GT(ratio, 1.7);
    EXPECT_LT(ratio, 2.3);
  }
  EXPECT_LT(errors.back(), 5e-2);  // start values are ~σ_max = 80, the end ~1
}

TEST(OdeSamplers, HeunIsSecondOrderOnGaussianFlow) {
  std::vector<double> errors;
  for (int steps : {16, 32, 64}) errors.push_back(gaussian_flow_error(sample_heun, steps));
  for (size_t i = 1; i < errors.size(); ++i) {
    const double ratio = errors[i - 1] / errors[i];
    std::printf("heun: error %.3e -> %.3e, ratio %.3f\n", errors[i - 1], errors[i], ratio);
    EXPECT_GT(ratio, 3.3);
    EXPECT_LT(ratio, 4.7);
  }
  EXPECT_LT(errors.back(), 1e-2);
}

TEST(OdeSamplers, EndingAtZeroGivesTheClosedFormLimit) {
  // Into σ = 0 the flow ends at μ + s/√(s² + σ_0²)(x_0 - μ); Heun with 256 steps is close.
  const auto x_start = gaussian_start(16, kSigmaMax);
  SeededNoise noise(seed_range(0, 16), torch::kCPU);
  const auto x = sample_heun(mixture_denoiser(single_gaussian(kMean, kVariance)), x_start,
                             karras_sigmas(256, kSigmaMin, kSigmaMax), noise, SamplerOptions{});
  EXPECT_LT(max_abs_diff(x, gaussian_flow(x_start, kSigmaMax, 0.0, kMean, kVariance)), 1e-3);
}

TEST(OdeSamplers, DdimWithoutNoiseIsEulerOnVpGrid) {
  const auto schedule = NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
  const auto sigmas = vp_sigmas(schedule, 50, TimestepSpacing::leading);
  const auto denoiser = mixture_denoiser(three_modes_2d());
  SeededNoise start_noise(seed_range(0, 64), torch::kCPU);
  const auto x_start = sigmas.front() * start_noise.randn({2}, torch::kFloat64);
  SeededNoise euler_noise(seed_range(0, 64), torch::kCPU), ddim_noise(seed_range(0, 64), torch::kCPU);
  SamplerOptions options;
  options.eta = 0.0;
  const auto euler = sample_euler(denoiser, x_start, sigmas, euler_noise, options);
  const auto ddim = sample_ddim(denoiser, x_start, sigmas, ddim_noise, options);
  EXPECT_LE(max_abs_diff(euler, ddim), 1e-6);
  // The samples did move from the start to the data (the comparison is not vacuous).
  EXPECT_GT(max_abs_diff(euler, x_start), 1.0);
}

TEST(OdeSamplers, DpmSolverBeatsEulerAtEqualNfe) {
  // 12 NFE each, into σ = 0 on a Karras grid. Gaussian: closed form; mixture: a 1024-step
  // Heun reference. At so few steps (h = Δλ ≈ 1) the second order has not fully set in, so
  // the margin asked for is modest.
  const auto sigmas = karras_sigmas(12, kSigmaMin, kSigmaMax);
  const auto x_start = gaussian_start(16, kSigmaMax);
  const auto gaussian = mixture_denoiser(single_gaussian(kMean, kVariance));
  SeededNoise noise(seed_range(0, 16), torch::kCPU);
  const auto exact = gaussian_flow(x_start, kSigmaMax, 0.0, kMean, kVariance);
  const double euler_error =
      max_abs_diff(sample_euler(gaussian, x_start, sigmas, noise, SamplerOptions{}), exact);
  const double dpm_error =
      max_abs_diff(sample_dpmpp_2m(gaussian, x_start, sigmas, noise, SamplerOptions{}), exact);
  std::printf("gaussian, 12 NFE: euler %.3e, dpmpp2m %.3e\n", euler_error, dpm_error);
  EXPECT_LT(dpm_error, euler_error / 1.5);

  const auto mixture = mixture_denoiser(three_modes_2d());
  SeededNoise start_noise(seed_range(0, 64), torch::kCPU);
  const auto x_mix = kSigmaMax * start_noise.randn({2}, torch::kFloat64);
  SeededNoise mix_noise(seed_range(0, 64), torch::kCPU);
  const auto reference = sample_heun(mixture, x_mix, karras_sigmas(1024, kSigmaMin, kSigmaMax),
                                     mix_noise, SamplerOptions{});
  const double euler_mix =
      max_abs_diff(sample_euler(mixture, x_mix, sigmas, mix_noise, SamplerOptions{}), reference);
  const double dpm_mix =
      max_abs_diff(sample_dpmpp_2m(mixture, x_mix, sigmas, mix_noise, SamplerOptions{}), reference);
  std::printf("mixture, 12 NFE: euler %.3e, dpmpp2m %.3e\n", euler_mix, dpm_mix);
  EXPECT_LT(dpm_mix, euler_mix / 1.5);
}

TEST(OdeSamplers, DpmSolverIsSecondOrderOnGaussianFlow) {
  std::vector<double> errors;
  for (int steps : {16, 32, 64}) errors.push_back(gaussian_flow_error(sample_dpmpp_2m, steps));
  for (size_t i = 1; i < errors.size(); ++i) {
    const double ratio = errors[i - 1] / errors[i];
    std::printf("dpmpp2m: error %.3e -> %.3e, ratio %.3f\n", errors[i - 1], errors[i], ratio);
    EXPECT_GT(ratio, 3.0);
  }
}
