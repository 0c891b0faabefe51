// Flow matching / rectified flow against the exact Gaussian-mixture velocity (DESIGN §5):
// the flow preconditioning turns the exact velocity into the exact denoiser, Euler on the
// linear-t grid is the velocity Euler step x_{t'} = x_t + (t' - t) v, the flow ODE with the
// exact velocity is exact for a Gaussian, and Euler / Heun converge at orders 1 / 2.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "diffuse/precond/precond.h"
#include "diffuse/sampling/euler.h"
#include "diffuse/sampling/heun.h"
#include "diffuse/schedule/noise_schedule.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "support/analytic_denoiser.h"
#include "support/sampler_checks.h"

using namespace diffuse;
using namespace diffuse::test;

namespace {

const std::vector<double> kMean{0.5, -1.0, 0.25, 2.0};
constexpr double kVariance = 0.25;
constexpr double kSigmaMax = 999.0;  // t_max = 0.999, the flow schedule's default

torch::Tensor gaussian_start(int64_t batch, double sigma_max) {
  SeededNoise noise(seed_range(0, static_cast<uint64_t>(batch)), torch::kCPU);
  return sigma_max * noise.randn({4}, torch::kFloat64);
}

// σ for t linear from t(σ_max) down to t_end (> 0), `steps` intervals.
std::vector<double> linear_t_to(double t_end, int steps) {
  const double t_max = NoiseSchedule::flow_t_from_sigma(kSigmaMax);
  std::vector<double> sigmas;
  for (int i = 0; i <= steps; ++i)
    sigmas.push_back(NoiseSchedule::sigma_from_flow_t(t_max + (t_end - t_max) * i / steps));
  return sigmas;
}

double flow_error(const SamplerFn& sampler, int steps, double t_end) {
  const auto x_start = gaussian_start(16, kSigmaMax);
  const auto sigmas = linear_t_to(t_end, steps);
  SeededNoise noise(seed_range(0, 16), torch::kCPU);
  const auto x = sampler(mixture_denoiser(single_gaussian(kMean, kVariance)), x_start, sigmas, noise,
                         SamplerOptions{}, {});
  const auto exact = gaussian_flow(x_start, kSigmaMax, sigmas.back(), kMean, kVariance);
  // Compare in the interpolant's coordinates x_t = x̃/(1+σ), where the state stays O(1).
  return ((x - exact).abs().max() / (1.0 + sigmas.back())).item<double>();
}

}  // namespace

TEST(Flow, PreconditioningTurnsTheExactVelocityIntoTheExactDenoiser) {
  const auto mixture = GaussianMixture{{0.6, 0.4}, {{1, -1, 0.5, 0}, {-1, 1, 0, 2}}, {0.1, 0.3}};
  Precond precond(std::make_shared<ExactVelocityNet>(mixture), Prediction::flow,
                  NoiseSchedule::flow(1e-3, kSigmaMax, 1.0));
  SeededNoise noise(seed_range(0, 6), torch::kCPU);
  const auto sigma = torch::tensor({0.01, 0.3, 1.0, 4.0, 50.0, 900.0}, torch::kFloat64);
  const auto x = (sigma.view({-1, 1, 1, 1}) + 1.0) * noise.randn({1, 2, 2}, torch::kFloat64);
  const auto d = precond->denoise(x.to(torch::kFloat32), sigma.to(torch::kFloat32), {});
  const auto exact = mixture_denoise(mixture, x, sigma);
  EXPECT_LT((d.to(torch::kFloat64) - exact).abs().max().item<double>(), 1e-3);
}

TEST(Flow, EulerOnTheLinearTGridIsTheVelocityEulerStep) {
  // Rectified-flow sampling as usually written: x_{t'} = x_t + (t' - t) v(x_t, t) from
  // x_{t_max} = t_max ε, ending at t = 0. σ-space Euler on the same grid gives x̃ = (1+σ) x_t.
  const auto mixture = three_modes_2d();
  const auto sigmas = linear_t_sigmas(25, kSigmaMax);
  const auto seeds = seed_range(0, 32);
  const auto euler = run_sampler(sample_euler, mixture, sigmas, seeds, SamplerOptions{}, {2});

  SeededNoise noise(seeds, torch::kCPU);
  const double t_max = NoiseSchedule::flow_t_from_sigma(kSigmaMax);
  auto x_t = t_max * noise.randn({2}, torch::kFloat64);
  for (size_t i = 0; i + 1 < sigmas.size(); ++i) {
    const double t = NoiseSchedule::flow_t_from_sigma(sigmas[i]);
    const double t_next = NoiseSchedule::flow_t_from_sigma(sigmas[i + 1]);
    x_t = x_t + (t_next - t) * mixture_velocity(mixture, x_t, torch::full({x_t.size(0)}, t, torch::kFloat64));
  }
  EXPECT_LE((euler - x_t).abs().max().item<double>(), 1e-9);
  expect_mixture_moments(mixture, run_sampler(sample_euler, mixture, linear_t_sigmas(100, kSigmaMax),
                                              seed_range(0, 2000), SamplerOptions{}, {2}),
                         "flow euler, 100 steps", 4.0, /*check_weights=*/false);
}

TEST(Flow, OdeWithTheExactVelocityIsExactForAGaussian) {
  // Heun on 256 linear-t steps to t = 0 reproduces the closed-form flow of N(μ, s² I), whose
  // end point is an exact draw from it.
  const auto x_start = gaussian_start(16, kSigmaMax);
  SeededNoise noise(seed_range(0, 16), torch::kCPU);
  const auto x = sample_heun(mixture_denoiser(single_gaussian(kMean, kVariance)), x_start,
                             linear_t_sigmas(256, kSigmaMax), noise, SamplerOptions{});
  EXPECT_LT((x - gaussian_flow(x_start, kSigmaMax, 0.0, kMean, kVariance)).abs().max().item<double>(), 1e-3);
}

TEST(Flow, EulerIsFirstOrderAndHeunSecondOrder) {
  constexpr double kTEnd = 0.05;
  std::vector<double> euler, heun;
  for (int steps : {32, 64, 128}) {
    euler.push_back(flow_error(sample_euler, steps, kTEnd));
    heun.push_back(flow_error(sample_heun, steps, kTEnd));
  }
  for (size_t i = 1; i < euler.size(); ++i) {
    const double euler_ratio = euler[i - 1] / euler[i], heun_ratio = heun[i - 1] / heun[i];
    std::printf("flow: euler %.3e -> %.3e (%.2f), heun %.3e -> %.3e (%.2f)\n", euler[i - 1],
                euler[i], euler_ratio, heun[i - 1], heun[i], heun_ratio);
    EXPECT_GT(euler_ratio, 1.7);
    EXPECT_LT(euler_ratio, 2.3);
    // Heun's ratio approaches 4 from above (the error's h³ term still shows at 32 steps).
    EXPECT_GT(heun_ratio, 3.3);
    EXPECT_LT(heun_ratio, 6.0);
  }
}
