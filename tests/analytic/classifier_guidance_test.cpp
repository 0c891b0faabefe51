// Classifier guidance with the exact class posterior of a Gaussian mixture (DESIGN §5):
// D_cg = D + s σ² ∇log p(y | x, σ). s = 0 leaves the sampler unchanged, s = 1 samples the
// class-conditional mixture exactly, the share of class y grows with s, and a large s gives
// class y almost surely.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "diffuse/precond/classifier_guidance.h"
#include "diffuse/sampling/heun.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "support/analytic_denoiser.h"
#include "support/sampler_checks.h"

using namespace diffuse;
using namespace diffuse::test;

namespace {

// Components 0 and 1 (weights 0.5, 0.3) are class 0, component 2 (0.2) is class 1.
const std::vector<int64_t> kComponentClass{0, 0, 1};
constexpr int64_t kClasses = 2;
constexpr uint64_t kSamples = 2000;
constexpr uint64_t kShareSamples = 1000;

ClassifierFn exact_classifier() {
  return [mixture = three_modes_2d()](const torch::Tensor& x, const torch::Tensor& sigma) {
    return mixture_class_log_posterior(mixture, kComponentClass, kClasses, x, sigma);
  };
}

// Guided Heun (deterministic, 24 steps) towards class y with scale s.
torch::Tensor guided_samples(int64_t y, double scale, uint64_t count = kSamples) {
  const auto labels = torch::full({static_cast<int64_t>(count)}, y, torch::kLong);
  const auto denoiser = make_classifier_guided_denoiser(mixture_denoiser(three_modes_2d()),
                                                        exact_classifier(), labels, scale);
  return run_sampler(sample_heun, denoiser, karras_sigmas(24, 0.002, 80.0), seed_range(0, count),
                     SamplerOptions{}, {2});
}

double class_share(const torch::Tensor& samples, int64_t y) {
  const auto posterior = mixture_class_log_posterior(three_modes_2d(), kComponentClass, kClasses, samples,
                                                     torch::full({samples.size(0)}, 1e-3, torch::kFloat64));
  return (posterior.argmax(1) == y).to(torch::kFloat64).mean().item<double>();
}

}  // namespace

TEST(ClassifierGuidance, TheGuidanceTermIsSigmaSquaredTimesTheClassScore) {
  // D_cg - D against ∇ log p(y | x, σ) from autograd on the posterior, per sample.
  const auto mixture = three_modes_2d();
  SeededNoise noise(seed_range(0, 6), torch::kCPU);
  const auto x = 2.0 * noise.randn({2}, torch::kFloat64);
  const auto labels = torch::tensor({0, 1, 0, 1, 1, 0}, torch::kLong);
  const auto sigma = torch::full({6}, 0.8, torch::kFloat64);
  const auto guided = make_classifier_guided_denoiser(mixture_denoiser(mixture), exact_classifier(), labels, 2.5);
  auto x_in = x.clone().requires_grad_(true);
  const auto log_p = mixture_class_log_posterior(mixture, kComponentClass, kClasses, x_in, sigma);
  const auto grad = torch::autograd::grad({log_p.gather(1, labels.view({-1, 1})).sum()}, {x_in})[0];
  const auto expected = mixture_denoise(mixture, x, sigma) + 2.5 * 0.64 * grad;
  EXPECT_LT((guided(x, sigma) - expected).abs().max().item<double>(), 1e-12);
}

TEST(ClassifierGuidance, ScaleZeroLeavesTheSamplerUnchanged) {
  const auto plain = run_sampler(sample_heun, three_modes_2d(), karras_sigmas(24, 0.002, 80.0),
                                 seed_range(0, 64), SamplerOptions{}, {2});
  EXPECT_TRUE(torch::equal(guided_samples(1, 0.0, 64), plain));
}

TEST(ClassifierGuidance, ScaleOneSamplesTheClassConditionalMixture) {
  // ∇log p(x) + ∇log p(y|x) = ∇log p(x|y): class 0's two components with weights 5/8, 3/8.
  const auto samples = guided_samples(0, 1.0);
  expect_mixture_moments(class_conditional(three_modes_2d(), kComponentClass, 0), samples, "guided s=1 to class 0");
}

TEST(ClassifierGuidance, ShareOfTheClassGrowsWithTheScale) {
  // Class 1 has 20% of the mass; s = 1 gives it all (up to discretisation), and a large s
  // too, even towards a minority class.
  std::vector<double> shares;
  for (double s : {0.0, 0.25, 0.5, 1.0, 4.0}) {
    shares.push_back(class_share(guided_samples(1, s, kShareSamples), 1));
    std::printf("classifier guidance s=%.2f: share of class 1 %.4f\n", s, shares.back());
  }
  const double n = static_cast<double>(kShareSamples);
  EXPECT_NEAR(shares[0], 0.2, 4 * std::sqrt(0.2 * 0.8 / n));
  for (size_t i = 1; i < shares.size(); ++i) EXPECT_GT(shares[i], shares[i - 1] - 1e-9) << i;
  EXPECT_GT(shares[1], shares[0] + 0.05);
  EXPECT_GT(shares[3], 0.99);
  EXPECT_GT(shares[4], 0.995);
}
