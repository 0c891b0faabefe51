// DDIM inversion against the exact Gaussian denoiser (DESIGN §5): run upwards, the ODE samplers
// follow the closed-form probability-flow map of a Gaussian at their order; inverting exact
// data and sampling it back reconstructs it, with an error that shrinks at the solver's order;
// the inverted data is unit noise; stochastic and non-ODE samplers are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "diffuse/core/error.h"
#include "diffuse/sampling/dpmpp_2m.h"
#include "diffuse/sampling/euler.h"
#include "diffuse/sampling/heun.h"
#include "diffuse/sampling/invert.h"
#include "diffuse/sampling/langevin.h"
#include "diffuse/schedule/noise_schedule.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "support/analytic_denoiser.h"
#include "support/expect_text.h"
#include "support/sampler_checks.h"

using namespace diffuse;
using namespace diffuse::test;

namespace {

const std::vector<double> kMean{0.5, -1.0, 0.25, 2.0};
constexpr double kVariance = 0.25;
constexpr double kSigmaStart = 0.002, kSigmaEnd = 80.0;

// Data points of N(μ, s² I), seen at σ_start: μ + √(s² + σ_start²) n, float64 [B, 4].
torch::Tensor gaussian_data(int64_t batch) {
  SeededNoise noise(seed_range(0, static_cast<uint64_t>(batch)), torch::kCPU);
  return torch::tensor(kMean, torch::kFloat64) +
         std::sqrt(kVariance + kSigmaStart * kSigmaStart) * noise.randn({4}, torch::kFloat64);
}

// Karras grid from σ_start up to σ_end in `steps` intervals.
std::vector<double> increasing_karras(int steps) {
  auto sigmas = karras_sigmas(steps + 1, kSigmaStart, kSigmaEnd);
  sigmas.pop_back();  // the trailing 0
  return std::vector<double>(sigmas.rbegin(), sigmas.rend());
}

// Max error at σ_end of `sampler` run upwards, relative to σ_end (the scale of x there).
double upward_error(const std::string& sampler, int steps) {
  const auto x = gaussian_data(16);
  const auto latent = invert_ode(sampler, mixture_denoiser(single_gaussian(kMean, kVariance)), x,
                                 increasing_karras(steps));
  const auto exact = gaussian_flow(x, kSigmaStart, kSigmaEnd, kMean, kVariance);
  return (latent - exact).abs().max().item<double>() / kSigmaEnd;
}

// The error ratio per doubling of the steps is 2^order (within [lo, hi]).
void expect_order(const std::string& sampler, const std::vector<double>& errors, double lo, double hi) {
  for (size_t i = 1; i < errors.size(); ++i) {
    const double ratio = errors[i - 1] / errors[i];
    std::printf("%s: error %.3e -> %.3e, ratio %.3f\n", sampler.c_str(), errors[i - 1], errors[i], ratio);
    EXPECT_GT(ratio, lo) << sampler;
    EXPECT_LT(ratio, hi) << sampler;
  }
}

// Two modes in 1×2×2 "images" (in the data range) and the exact flow model of them.
GaussianMixture two_modes() {
  return GaussianMixture{{0.6, 0.4}, {{-0.5, -0.5, 0.5, 0.5}, {0.5, 0.5, -0.5, -0.5}}, {0.04, 0.04}};
}

Precond exact_flow_model(const GaussianMixture& mixture) {
  return Precond(std::make_shared<ExactVelocityNet>(mixture), Prediction::flow, NoiseSchedule::flow(1e-3, 999.0, 1.0));
}

// `count` draws of the mixture as [count, 1, 2, 2] float32.
torch::Tensor mixture_images(const GaussianMixture& mixture, int64_t count) {
  SeededNoise noise(seed_range(100, 100 + static_cast<uint64_t>(count)), torch::kCPU);
  const auto z = noise.randn({4}, torch::kFloat64);
  std::vector<torch::Tensor> rows;
  for (int64_t k = 0; k < count; ++k) {
    const size_t c = k % 5 < 3 ? 0 : 1;  // 3 of every 5 from the first mode (weight 0.6)
    rows.push_back(torch::tensor(mixture.means[c], torch::kFloat64) + std::sqrt(mixture.variances[c]) * z[k]);
  }
  return torch::stack(rows).view({count, 1, 2, 2}).to(torch::kFloat32);
}

double round_trip_error(Precond& model, const torch::Tensor& images, const std::string& sampler, int steps) {
  InvertOptions options;
  options.sampler = sampler;
  options.steps = steps;
  const Inversion inv = invert_images(model, images, options);
  return (inv.reconstructions - images).abs().max().item<double>();
}

}  // namespace

TEST(Inversion, EulerRunsTheGaussianFlowUpwardsAtFirstOrder) {
  std::vector<double> errors;
  for (int steps : {32, 64, 128}) errors.push_back(upward_error("euler", steps));
  expect_order("euler", errors, 1.7, 2.3);
  EXPECT_LT(errors.back(), 0.1);  // relative to σ_end: x grows from ~1 to ~80
}

TEST(Inversion, HeunAndDpmSolverRunItAtSecondOrder) {
  for (const std::string sampler : {"heun", "dpmpp2m"}) {
    std::vector<double> errors;
    for (int steps : {16, 32, 64}) errors.push_back(upward_error(sampler, steps));
    expect_order(sampler, errors, 3.0, 5.0);
    EXPECT_LT(errors.back(), 0.01) << sampler;
  }
}

TEST(Inversion, DdimWithoutNoiseIsEulerUpwards) {
  const auto x = gaussian_data(8);
  const auto denoiser = mixture_denoiser(single_gaussian(kMean, kVariance));
  const auto sigmas = increasing_karras(10);
  EXPECT_TRUE(invert_ode("ddim", denoiser, x, sigmas).equal(invert_ode("euler", denoiser, x, sigmas)));
}

TEST(Inversion, RoundTripReconstructsAtTheSolversOrder) {
  const auto mixture = two_modes();
  Precond model = exact_flow_model(mixture);
  const auto images = mixture_images(mixture, 40);
  std::vector<double> euler, heun, dpm;
  for (int steps : {16, 32, 64}) euler.push_back(round_trip_error(model, images, "euler", steps));
  // Heun reaches its asymptotic order from about 64 steps on the flow grid, whose first
  // step spans σ = 999 → 7 at 8 steps.
  for (int steps : {64, 128, 256}) heun.push_back(round_trip_error(model, images, "heun", steps));
  for (int steps : {32, 64, 128}) dpm.push_back(round_trip_error(model, images, "dpmpp2m", steps));
  expect_order("euler round trip", euler, 1.6, 2.5);
  expect_order("heun round trip", heun, 3.0, 6.0);
  // DPM-Solver++(2M) up and down are mirror images of one another, and their errors partly
  // cancel: the round trip falls faster than second order (ratios 8 and 11 here).
  expect_order("dpmpp2m round trip", dpm, 3.5, 1e9);
  EXPECT_LT(heun.back(), 5e-4);
  EXPECT_LT(dpm.back(), 1e-3);
}

TEST(Inversion, InvertedDataIsUnitNoiseAndPsnrMeasuresTheRoundTrip) {
  const auto mixture = two_modes();
  Precond model = exact_flow_model(mixture);
  const auto images = mixture_images(mixture, 500);
  InvertOptions options;
  options.sampler = "heun";
  options.steps = 32;
  options.batch_size = 128;  // several batches, the last one partial
  const Inversion inv = invert_images(model, images, options);
  ASSERT_EQ(inv.noise.sizes(), images.sizes());
  // The exact flow carries the data distribution to N(0, I): 2000 values, standard errors
  // 0.022 (mean) and 0.016 (std).
  EXPECT_NEAR(inv.noise.mean().item<double>(), 0.0, 0.1);
  EXPECT_NEAR(inv.noise.std().item<double>(), 1.0, 0.08);
  // The path starts at the schedule's σ_min and ends at the grid's σ_max.
  EXPECT_DOUBLE_EQ(inv.sigmas.front(), 1e-3);
  ASSERT_EQ(inv.sigmas.size(), 33u);
  for (size_t i = 1; i < inv.sigmas.size(); ++i) EXPECT_GT(inv.sigmas[i], inv.sigmas[i - 1]);
  // PSNR = 10 log10(4 / MSE) per image.
  for (int64_t k : {0, 250, 499}) {
    const double mse = (inv.reconstructions[k] - images[k]).pow(2).mean().item<double>();
    EXPECT_NEAR(inv.psnr[k].item<double>(), 10.0 * std::log10(4.0 / mse), 1e-3);
    EXPECT_GT(inv.psnr[k].item<double>(), 40.0);
  }
}

TEST(Inversion, RefusesWhatHasNoInverse) {
  const auto x = gaussian_data(2);
  const auto denoiser = mixture_denoiser(single_gaussian(kMean, kVariance));
  const auto up = increasing_karras(4);
  EXPECT_CONTAINS(error_message<ConfigError>([&] { invert_ode("euler_a", denoiser, x, up); }),
                  "sampler 'euler_a' does not solve the probability-flow ODE, so it cannot be run backwards; "
                  "inversion takes one of: ddim, euler, heun, dpmpp2m");
  SamplerOptions eta;
  eta.eta = 0.5;
  EXPECT_CONTAINS(error_message<ConfigError>([&] { invert_ode("ddim", denoiser, x, up, eta); }), "eta 0 for ddim");
  SamplerOptions churn;
  churn.s_churn = 1.0;
  EXPECT_CONTAINS(error_message<ConfigError>([&] { invert_ode("heun", denoiser, x, up, churn); }), "s_churn 0");
  const std::vector<double> down(up.rbegin(), up.rend());
  EXPECT_CONTAINS(error_message<ConfigError>([&] { invert_ode("euler", denoiser, x, down); }),
                  "the sigma list must increase");
  const std::vector<double> through_zero{0.0, 1.0, 2.0};
  EXPECT_CONTAINS(error_message<ConfigError>([&] { invert_ode("euler", denoiser, x, through_zero); }),
                  "sigma[0] = 0.000000 must be finite and > 0");
  // The other samplers still refuse an increasing list.
  SeededNoise noise(seed_range(0, 2), torch::kCPU);
  EXPECT_CONTAINS(error_message<ConfigError>([&] { sample_langevin(denoiser, x, up, noise, SamplerOptions{}, {}); }),
                  "sigmas must decrease strictly");

  Precond model = exact_flow_model(two_modes());
  EXPECT_CONTAINS(error_message<DataError>([&] { invert_images(model, torch::zeros({3, 1, 4, 4}), InvertOptions{}); }),
                  "the images must be [N, 1, 2, 2] with N >= 1 for this model, found [3, 1, 4, 4]");
  InvertOptions labelled;
  labelled.labels = {1};
  EXPECT_CONTAINS(error_message<ConfigError>([&] { invert_images(model, torch::zeros({1, 1, 2, 2}), labelled); }),
                  "class labels given, but the model is unconditional");
}
