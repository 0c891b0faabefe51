// Score-based samplers against the exact Gaussian-mixture denoiser (DESIGN §5): the
// reverse-time SDE in its VE and VP forms, predictor–corrector and (annealed) Langevin
// dynamics match the mixture's moments within standard-error bounds; PC with zero corrector
// steps is its predictor; Langevin at a fixed σ is stationary at the σ-smoothed mixture.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "diffuse/core/error.h"
#include "diffuse/sampling/langevin.h"
#include "diffuse/sampling/predictor_corrector.h"
#include "diffuse/sampling/reverse_sde.h"
#include "diffuse/sampling/sampler_common.h"
#include "diffuse/schedule/noise_schedule.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "support/analytic_denoiser.h"
#include "support/sampler_checks.h"

using namespace diffuse;
using namespace diffuse::test;

namespace {

constexpr uint64_t kMomentSamples = 2000;

SamplerOptions pc_options(const std::string& predictor, int corrector_steps, double snr = 0.16) {
  SamplerOptions options;
  options.predictor = predictor;
  options.corrector_steps = corrector_steps;
  options.snr = snr;
  return options;
}

}  // namespace

TEST(ReverseSde, VeFormMomentsMatchMixture) {
  // Song et al. 2021 sample VE models on geometric levels (N = 1000 there; 300 suffice here).
  const auto sigmas = geometric_sigmas(300, 0.002, 80.0);
  const auto samples = run_sampler(sample_sde_ve, three_modes_2d(), sigmas,
                                   seed_range(0, kMomentSamples), SamplerOptions{}, {2});
  expect_mixture_moments(three_modes_2d(), samples, "sde_ve, 300 steps");
}

TEST(ReverseSde, VpFormMomentsMatchMixtureOnTheVpGrid) {
  // The linear schedule compressed to T = 200 (β × 5, ᾱ_T ≈ 4.5e-5), every grid step.
  const auto schedule = NoiseSchedule::vp_linear(200, 5e-4, 0.1);
  const auto sigmas = vp_sigmas(schedule, 200, TimestepSpacing::leading);
  const auto samples = run_sampler(sample_sde_vp, three_modes_2d(), sigmas,
                                   seed_range(0, kMomentSamples), SamplerOptions{}, {2});
  expect_mixture_moments(three_modes_2d(), samples, "sde_vp, T = 200");
}

TEST(ReverseSde, VpFormUsesTheGridBetasInTheVpState) {
  // One step of Song et al. 2021 eq. 6 written directly in VP space with the grid's β_t:
  // x_{t-1} = (1 + β_t/2) x_t + β_t ∇log p(x_t) + √β_t z, ∇log p = (√ᾱ_t x̂0 - x_t)/(1 - ᾱ_t).
  const auto schedule = NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
  const int t = 500;  // 1-based timestep t → grid index t - 1
  const double sigma = schedule.sigmas()[t - 1], sigma_next = schedule.sigmas()[t - 2];
  const double ab = schedule.alphas_cumprod()[t - 1], ab_next = schedule.alphas_cumprod()[t - 2];
  const double beta = schedule.betas()[t - 1];
  const auto mixture = three_modes_2d();
  const auto seeds = seed_range(0, 8);
  const auto stepped = run_sampler(sample_sde_vp, mixture, {sigma, sigma_next}, seeds, SamplerOptions{}, {2});

  SeededNoise noise(seeds, torch::kCPU);
  const auto x = sigma * noise.randn({2}, torch::kFloat64);
  const auto x0_hat = mixture_denoise(mixture, x, torch::full({8}, sigma, torch::kFloat64));
  const auto x_t = std::sqrt(ab) * x;
  const auto score = (std::sqrt(ab) * x0_hat - x_t) / (1.0 - ab);
  const auto x_t_next = (1.0 + beta / 2) * x_t + beta * score + std::sqrt(beta) * noise.randn_like(x);
  EXPECT_LE((stepped - x_t_next / std::sqrt(ab_next)).abs().max().item<double>(), 1e-9);
  EXPECT_GT((stepped - x).abs().max().item<double>(), 1e-3);
}

TEST(ReverseSde, VeStepIsTheScoreStepOfEquation47) {
  // x' = x + (σ² - σ'²) ∇log p_σ(x) + √(σ² - σ'²) z, with the score from autograd on the
  // noised density (not from D), so the σ-space score conversion is checked too.
  const auto mixture = three_modes_2d();
  const auto seeds = seed_range(0, 8);
  const double sigma = 1.3, sigma_next = 1.1;
  const auto stepped = run_sampler(sample_sde_ve, mixture, {sigma, sigma_next}, seeds, SamplerOptions{}, {2});
  SeededNoise noise(seeds, torch::kCPU);
  auto x = (sigma * noise.randn({2}, torch::kFloat64)).requires_grad_(true);
  const auto score = torch::autograd::grad({mixture_log_density(mixture, x, sigma).sum()}, {x})[0];
  const double variance = sigma * sigma - sigma_next * sigma_next;
  const auto expected = x.detach() + variance * score + std::sqrt(variance) * noise.randn_like(score);
  EXPECT_LE((stepped - expected).abs().max().item<double>(), 1e-9);
}

TEST(PredictorCorrector, ZeroCorrectorStepsIsThePredictor) {
  const auto sigmas = karras_sigmas(12, 0.002, 80.0);
  const auto seeds = seed_range(0, 16);
  for (const char* predictor : {"sde_ve", "sde_vp", "euler", "heun", "dpmpp2m", "ddim", "euler_a"}) {
    SCOPED_TRACE(predictor);
    auto options = pc_options(predictor, 0);
    options.eta = 1.0;
    const auto pc = run_sampler(sample_pc, three_modes_2d(), sigmas, seeds, options, {2});
    const auto alone = run_sampler(find_sampler(predictor).fn, three_modes_2d(), sigmas, seeds, options, {2});
    EXPECT_TRUE(torch::equal(pc, alone));
    // One corrector step does change the samples.
    const auto corrected = run_sampler(sample_pc, three_modes_2d(), sigmas, seeds, pc_options(predictor, 1), {2});
    EXPECT_FALSE(torch::equal(corrected, alone));
  }
}

TEST(PredictorCorrector, VeSdeWithLangevinCorrectorMomentsMatchMixture) {
  // Song et al. 2021 Algorithm 2 (reverse diffusion + Langevin, r = 0.16). The snr rule sets
  // ε from ‖z‖/‖∇log p‖, which suits high-dimensional data (‖x - μ‖ concentrates); in 2-D a
  // sample near a mode centre has a tiny score and gets a huge step. So the three modes live
  // in the first two of 32 dimensions (zero means elsewhere); moments are checked there.
  // The corrector cannot move mass between separated modes at small σ, so the predictor must
  // be fine enough to get the weights right (100 levels are not, in 32 dimensions).
  GaussianMixture mixture = three_modes_2d();
  for (auto& mu : mixture.means) mu.resize(32, 0.0);
  const auto sigmas = geometric_sigmas(300, 0.002, 80.0);
  const auto samples = run_sampler(sample_pc, mixture, sigmas, seed_range(0, kMomentSamples),
                                   pc_options("sde_ve", 1), {32});
  expect_mixture_moments(mixture, samples, "pc sde_ve + 1 corrector, 300 steps, d = 32");
}

TEST(PredictorCorrector, CorrectorUsesPerSampleStepSizes) {
  // Sample 3 is the same in a batch of 8 and alone: the step size ε uses its own norms.
  const auto sigmas = geometric_sigmas(10, 0.01, 20.0);
  const auto options = pc_options("euler", 2);
  const auto all = run_sampler(sample_pc, three_modes_2d(), sigmas, seed_range(0, 8), options, {2});
  const auto alone = run_sampler(sample_pc, three_modes_2d(), sigmas, {3}, options, {2});
  EXPECT_TRUE(torch::equal(all[3], alone[0]));
}

TEST(PredictorCorrector, UnknownOrNonPredictorIsAConfigError) {
  const auto sigmas = geometric_sigmas(3, 0.01, 20.0);
  EXPECT_THROW(run_sampler(sample_pc, three_modes_2d(), sigmas, {0}, pc_options("pc", 1), {2}), ConfigError);
  EXPECT_THROW(run_sampler(sample_pc, three_modes_2d(), sigmas, {0}, pc_options("langevin", 1), {2}), ConfigError);
  EXPECT_THROW(run_sampler(sample_pc, three_modes_2d(), sigmas, {0}, pc_options("rk4", 1), {2}), ConfigError);
}

TEST(Langevin, FixedSigmaIsStationaryAtTheSmoothedMixture) {
  // Unadjusted Langevin at σ = 1.5 from a far-off start (all samples at (4, 4)): after
  // burn-in the samples follow p_σ = the mixture with variances s_k² + σ² (its bias is
  // O(α) ≈ 1% of the variance here, well inside the bounds).
  const double sigma = 1.5, alpha = 0.1;
  const auto mixture = three_modes_2d();
  SeededNoise noise(seed_range(0, kMomentSamples), torch::kCPU);
  auto x = torch::full({static_cast<int64_t>(kMomentSamples), 2}, 4.0, torch::kFloat64);
  const auto sigma_b = torch::full({x.size(0)}, sigma, torch::kFloat64);
  const auto alpha_t = torch::full({}, alpha, torch::kFloat64);
  for (int step = 0; step < 600; ++step)
    x = langevin_step(x, sigma, mixture_denoise(mixture, x, sigma_b), alpha_t, noise.randn_like(x));
  expect_mixture_moments(smoothed_mixture(mixture, sigma), x, "langevin at sigma 1.5", 4.0,
                         /*check_weights=*/false);
}

TEST(Langevin, AnnealedMomentsMatchMixture) {
  // Song & Ermon 2019 Algorithm 1 with their ε = 2e-5 relative to σ_L = 0.01 (α_i/σ_i² = 0.2
  // at every level), 30 geometric levels from σ = 20, T = 15 steps each, then the final
  // denoising step.
  SamplerOptions options;
  options.langevin_steps = 15;
  options.langevin_eps = 2e-5;
  const auto sigmas = geometric_sigmas(30, 0.01, 20.0);
  const auto samples = run_sampler(sample_langevin, three_modes_2d(), sigmas, seed_range(0, kMomentSamples),
                                   options, {2});
  expect_mixture_moments(three_modes_2d(), samples, "annealed langevin, 30 x 15");
}

TEST(Langevin, StepSizeFollowsSigmaSquared) {
  // Two levels, one step each, with a denoiser returning 0: the score is -x/σ², so each step
  // is x(1 - α_i/(2σ_i²)) + √α_i z with α_i = ε σ_i²/σ_L²; z from the same streams.
  SamplerOptions options;
  options.langevin_steps = 1;
  options.langevin_eps = 0.01;
  const DenoiserFn zero = [](const torch::Tensor& x, const torch::Tensor&) { return torch::zeros_like(x); };
  const std::vector<double> sigmas{2.0, 0.5};
  const auto out = run_sampler(sample_langevin, zero, sigmas, {0, 1}, options, {3});
  SeededNoise noise({0, 1}, torch::kCPU);
  auto x = 2.0 * noise.randn({3}, torch::kFloat64);
  for (double sigma : sigmas) {
    const double alpha = 0.01 * sigma * sigma / 0.25;
    x = x * (1.0 - alpha / (2 * sigma * sigma)) + std::sqrt(alpha) * noise.randn_like(x);
  }
  EXPECT_LE((out - x).abs().max().item<double>(), 1e-12);
}
