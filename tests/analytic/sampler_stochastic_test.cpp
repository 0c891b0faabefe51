// Stochastic samplers against the exact Gaussian-mixture denoiser (DESIGN §5): DDPM equals
// DDIM(η=1) and a direct VP-space DDPM, sample moments within standard-error bounds, and
// seed/batch invariance.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "diffuse/sampling/ddim.h"
#include "diffuse/sampling/ddpm.h"
#include "diffuse/sampling/euler_ancestral.h"
#include "diffuse/sampling/heun.h"
#include "diffuse/schedule/noise_schedule.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "support/analytic_denoiser.h"
#include "support/sampler_checks.h"

using namespace diffuse;
using namespace diffuse::test;

namespace {

// The 1000-step linear schedule compressed to T = 200 (β scaled by 5), so that ᾱ_T ≈ 4.5e-5
// and σ_T ≫ the data scale as in the full schedule, at a fifth of the steps.
NoiseSchedule short_vp_linear() { return NoiseSchedule::vp_linear(200, 5e-4, 0.1); }

SamplerOptions with_eta(double eta) {
  SamplerOptions options;
  options.eta = eta;
  return options;
}

// EDM's churn settings scaled to a short run (Karras et al. 2022, Table 5), S_noise = 1 so the
// target distribution is exact.
SamplerOptions churn_options() {
  SamplerOptions options;
  options.s_churn = 30.0;
  options.s_tmin = 0.05;
  options.s_tmax = 50.0;
  options.s_noise = 1.0;
  return options;
}

constexpr uint64_t kMomentSamples = 2000;

}  // namespace

TEST(StochasticSamplers, DdpmIsDdimWithFullEtaOnTheFullGrid) {
  const auto schedule = short_vp_linear();
  const auto sigmas = vp_sigmas(schedule, schedule.timesteps(), TimestepSpacing::leading);
  const auto seeds = seed_range(0, 16);
  const auto ddpm = run_sampler(sample_ddpm, three_modes_2d(), sigmas, seeds, SamplerOptions{}, {2});
  const auto ddim = run_sampler(sample_ddim, three_modes_2d(), sigmas, seeds, with_eta(1.0), {2});
  EXPECT_LE((ddpm - ddim).abs().max().item<double>(), 1e-6);
}

TEST(StochasticSamplers, DdpmMatchesVpSpacePosteriorStep) {
  // Ho et al. 2020 eq. 6-7 in VP space: x_{t-1} = μ̃_t(x_t, x̂0) + √β̃_t z with
  // μ̃ = √ᾱ_{t-1} β_t/(1-ᾱ_t) x̂0 + √α_t (1-ᾱ_{t-1})/(1-ᾱ_t) x_t, β̃_t = (1-ᾱ_{t-1})/(1-ᾱ_t) β_t,
  // x̂0 = D(x_t/√ᾱ_t; σ_t), with the same z as the σ-space sampler.
  const auto schedule = NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
  const int T = schedule.timesteps();
  const auto sigmas = vp_sigmas(schedule, T, TimestepSpacing::leading);
  const auto mixture = three_modes_2d();
  const auto seeds = seed_range(0, 8);
  const auto sigma_space = run_sampler(sample_ddpm, mixture, sigmas, seeds, SamplerOptions{}, {2});

  SeededNoise noise(seeds, torch::kCPU);
  const auto& alpha_bar = schedule.alphas_cumprod();
  const auto& beta = schedule.betas();
  // x_T = √ᾱ_T (σ_T n): the same start as the σ-space run.
  auto x = std::sqrt(alpha_bar[T - 1]) * (sigmas.front() * noise.randn({2}, torch::kFloat64));
  for (int t = T; t >= 1; --t) {
    const double ab = alpha_bar[t - 1];
    const double ab_prev = t > 1 ? alpha_bar[t - 2] : 1.0;
    const double b = beta[t - 1];
    const auto x0_hat = mixture_denoise(mixture, x / std::sqrt(ab),
                                        torch::full({x.size(0)}, schedule.sigmas()[t - 1], torch::kFloat64));
    x = std::sqrt(ab_prev) * b / (1 - ab) * x0_hat + std::sqrt(1 - b) * (1 - ab_prev) / (1 - ab) * x;
    if (t > 1) x = x + std::sqrt((1 - ab_prev) / (1 - ab) * b) * noise.randn_like(x);
  }
  EXPECT_LE((sigma_space - x).abs().max().item<double>(), 1e-6);
  EXPECT_GT(x.abs().max().item<double>(), 1.0);
}

TEST(StochasticSamplers, DdpmMomentsMatchMixture) {
  const auto schedule = short_vp_linear();
  const auto sigmas = vp_sigmas(schedule, schedule.timesteps(), TimestepSpacing::leading);
  const auto samples = run_sampler(sample_ddpm, three_modes_2d(), sigmas,
                                   seed_range(0, kMomentSamples), SamplerOptions{}, {2});
  expect_mixture_moments(three_modes_2d(), samples, "ddpm T=200");
}

TEST(StochasticSamplers, DdimAncestralMomentsMatchMixture) {
  const auto schedule = NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
  const auto sigmas = vp_sigmas(schedule, 100, TimestepSpacing::leading);
  const auto samples = run_sampler(sample_ddim, three_modes_2d(), sigmas,
                                   seed_range(0, kMomentSamples), with_eta(1.0), {2});
  expect_mixture_moments(three_modes_2d(), samples, "ddim eta=1, 100 steps");
}

TEST(StochasticSamplers, HeunChurnMomentsMatchMixture) {
  const auto sigmas = karras_sigmas(32, 0.002, 80.0);
  const auto samples = run_sampler(sample_heun, three_modes_2d(), sigmas,
                                   seed_range(0, kMomentSamples), churn_options(), {2});
  expect_mixture_moments(three_modes_2d(), samples, "heun churn, 32 steps");
}

TEST(StochasticSamplers, EulerAncestralMomentsMatchMixture) {
  const auto sigmas = karras_sigmas(64, 0.002, 80.0);
  const auto samples = run_sampler(sample_euler_ancestral, three_modes_2d(), sigmas,
                                   seed_range(0, kMomentSamples), with_eta(1.0), {2});
  expect_mixture_moments(three_modes_2d(), samples, "euler_a eta=1, 64 steps");
}

TEST(StochasticSamplers, SampleDoesNotDependOnItsBatch) {
  // Sample 5 from seeds {0..7}, {5} and {4, 5, 6} is bit-identical (DESIGN §2), on
  // image-shaped data [B, 1, 2, 2].
  const GaussianMixture mixture{{0.6, 0.4}, {{1, -1, 0.5, 0}, {-1, 1, 0, 2}}, {0.1, 0.3}};
  const auto vp = short_vp_linear();
  struct Case {
    const char* name;
    SamplerFn sampler;
    std::vector<double> sigmas;
    SamplerOptions options;
  };
  const std::vector<Case> cases{
      {"ddpm", sample_ddpm, vp_sigmas(vp, vp.timesteps(), TimestepSpacing::leading), {}},
      {"ddim eta=1", sample_ddim, vp_sigmas(vp, 20, TimestepSpacing::trailing), with_eta(1.0)},
      {"heun churn", sample_heun, karras_sigmas(12, 0.002, 80.0), churn_options()},
      {"euler_a", sample_euler_ancestral, karras_sigmas(12, 0.002, 80.0), with_eta(1.0)},
  };
  for (const auto& c : cases) {
    for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
      const auto all = run_sampler(c.sampler, mixture, c.sigmas, seed_range(0, 8), c.options, {1, 2, 2}, dtype);
      const auto alone = run_sampler(c.sampler, mixture, c.sigmas, {5}, c.options, {1, 2, 2}, dtype);
      const auto three = run_sampler(c.sampler, mixture, c.sigmas, seed_range(4, 7), c.options, {1, 2, 2}, dtype);
      EXPECT_TRUE(torch::equal(all[5], alone[0])) << c.name;
      EXPECT_TRUE(torch::equal(all[5], three[1])) << c.name;
      // Different seeds give different samples.
      EXPECT_FALSE(torch::equal(all[5], all[4])) << c.name;
    }
  }
}
