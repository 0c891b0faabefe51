// Learned-variance L_vlb (Nichol & Dhariwal 2021): eq. 15 interpolation, the KL term
// against closed forms, the discretised decoder NLL against hand-computed values, and the
// stop-gradient on the mean.
#include <gtest/gtest.h>

#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/losses/vlb_loss.h"

using namespace diffuse;

namespace {

// A three-step grid whose constants are easy to write by hand: ᾱ = 0.9, 0.72, 0.504.
const std::vector<double> kBetas{0.1, 0.2, 0.3};
const std::vector<double> kAlphasCumprod{0.9, 0.72, 0.504};

torch::Tensor timesteps(std::initializer_list<int64_t> values) {
  return torch::tensor(std::vector<int64_t>(values), torch::kInt64);
}

}  // namespace

TEST(VlbLoss, LearnedLogVarianceInterpolatesBetweenBetaTildeAndBeta) {
  auto t = timesteps({0, 1, 2});
  auto low = learned_posterior_log_variance(kBetas, kAlphasCumprod, t, -torch::ones({3, 1, 2, 2}));
  auto high = learned_posterior_log_variance(kBetas, kAlphasCumprod, t, torch::ones({3, 1, 2, 2}));
  auto mid = learned_posterior_log_variance(kBetas, kAlphasCumprod, t, torch::zeros({3, 1, 2, 2}));
  // β̃_t = β_t (1-ᾱ_{t-1}) / (1-ᾱ_t): β̃_1 = 0.2·0.1/0.28 = 1/14, β̃_2 = 0.3·0.28/0.496;
  // t = 0 uses β̃_1 because β̃_0 = 0.
  const double beta_tilde[3] = {1.0 / 14.0, 1.0 / 14.0, 0.3 * 0.28 / 0.496};
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(low[i][0][0][0].item<double>(), std::log(beta_tilde[i]), 1e-6) << i;
    EXPECT_NEAR(high[i][0][1][1].item<double>(), std::log(kBetas[static_cast<size_t>(i)]), 1e-6) << i;
    EXPECT_NEAR(mid[i][0][1][0].item<double>(),
                0.5 * (std::log(beta_tilde[i]) + std::log(kBetas[static_cast<size_t>(i)])), 1e-6) << i;
  }
}

TEST(VlbLoss, KlIsZeroWhenModelEqualsTruePosterior) {
  torch::manual_seed(0);
  auto x0 = torch::randn({4, 3, 4, 4}).clamp(-1, 1);
  auto x_t = torch::randn({4, 3, 4, 4});
  // v = -1 gives log β̃_t, the true posterior variance, for t >= 1.
  auto loss = vlb_loss(kBetas, kAlphasCumprod, timesteps({1, 2, 1, 2}), x_t, x0, x0.clone(),
                       -torch::ones_like(x0));
  ASSERT_EQ(loss.sizes(), torch::IntArrayRef({4}));
  EXPECT_LT(loss.abs().max().item<double>(), 1e-6) << loss;
}

TEST(VlbLoss, KlMatchesClosedForm) {
  torch::manual_seed(1);
  auto x0 = torch::rand({2, 2, 3, 3}) * 2 - 1;
  auto x_t = torch::randn({2, 2, 3, 3});
  auto x0_pred = x0 + 0.1;
  // Sample 0: t = 1, v = +1 (model variance β_1 = 0.2, true β̃_1 = 1/14), mean offset
  //   c·0.1 with c = β_1 √ᾱ_0 / (1-ᾱ_1) = 0.2·√0.9/0.28 = 0.677631:
  //   KL = ½(-1 + ln(0.2·14) + (1/14)/0.2 + (0.0677631)²/0.2) = 0.204861 in every dim.
  // Sample 1: t = 2, v = -1 (variances equal, β̃_2 = 0.169355), c = 0.3·√0.72/0.496 = 0.513223:
  //   KL = ½ (0.0513223)² / 0.169355 = 0.00777650.
  auto var_interp = torch::cat({torch::ones({1, 2, 3, 3}), -torch::ones({1, 2, 3, 3})});
  auto loss = vlb_loss(kBetas, kAlphasCumprod, timesteps({1, 2}), x_t, x0, x0_pred, var_interp);
  EXPECT_NEAR(loss[0].item<double>(), 0.2048607289987425, 1e-5);
  EXPECT_NEAR(loss[1].item<double>(), 0.007776497695852534, 1e-6);
}

TEST(VlbLoss, DecoderNllAtTimestepZeroMatchesHandComputedValue) {
  // β_0 = 1e-4, v = +1: p(x0 | x_1) = N(x0_pred, 1e-4) (the t = 0 posterior mean is x0 itself),
  // σ = 0.01 and bins of half-width h = 1/255. Per element:
  //   x0 = -1,  μ = -1:     -ln Φ(h/σ)                        = 0.426900 (open lower bin)
  //   x0 = 0,   μ = 0.005:  -ln[Φ((h-0.005)/σ) - Φ((-h-0.005)/σ)] = 1.305985
  //   x0 = 0.5, μ = 0.5:    -ln[Φ(h/σ) - Φ(-h/σ)]             = 1.187254
  //   x0 = 1,   μ = 0.99:   -ln[1 - Φ((0.01-h)/σ)]            = 1.303256 (open upper bin)
  // mean = 1.055849 nats per dim.
  const std::vector<double> betas{1e-4, 0.02};
  const std::vector<double> alphas_cumprod{0.9999, 0.9999 * 0.98};
  auto x0 = torch::tensor({-1.0f, 0.0f, 0.5f, 1.0f}).view({1, 1, 2, 2});
  auto x0_pred = torch::tensor({-1.0f, 0.005f, 0.5f, 0.99f}).view({1, 1, 2, 2});
  auto x_t = torch::randn({1, 1, 2, 2});
  auto loss = vlb_loss(betas, alphas_cumprod, timesteps({0}), x_t, x0, x0_pred, torch::ones({1, 1, 2, 2}));
  EXPECT_NEAR(loss[0].item<double>(), 1.0558488723269763, 1e-4);
}

TEST(VlbLoss, GradientReachesVarianceButNotDetachedMean) {
  torch::manual_seed(2);
  auto x0 = torch::rand({3, 2, 4, 4}) * 2 - 1;
  auto x_t = torch::randn({3, 2, 4, 4});
  auto x0_pred = (x0 + 0.1 * torch::randn({3, 2, 4, 4})).requires_grad_(true);
  auto var_interp = (0.5 * torch::randn({3, 2, 4, 4})).tanh().requires_grad_(true);
  auto loss = vlb_loss(kBetas, kAlphasCumprod, timesteps({0, 1, 2}), x_t, x0, x0_pred, var_interp);
  loss.sum().backward();
  ASSERT_TRUE(var_interp.grad().defined());
  for (int64_t b = 0; b < 3; ++b)  // both the decoder (t = 0) and the KL terms train the variance
    EXPECT_GT(var_interp.grad()[b].abs().sum().item<double>(), 0.0) << "sample " << b;
  EXPECT_FALSE(x0_pred.grad().defined());
}

TEST(VlbLoss, RejectsMismatchedGridAndShapes) {
  auto x = torch::zeros({2, 1, 2, 2});
  EXPECT_THROW(vlb_loss({0.1, 0.2}, {0.9}, timesteps({0, 1}), x, x, x, x), ConfigError);
  EXPECT_THROW(vlb_loss(kBetas, kAlphasCumprod, timesteps({0}), x, x, x, x), DataError);
  EXPECT_THROW(vlb_loss(kBetas, kAlphasCumprod, timesteps({0, 1}), x, x, x, torch::zeros({2, 2, 2, 2})),
               DataError);
}
