// Noise schedules and σ spacings against exact values (DESIGN §3).
#include <gtest/gtest.h>

#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/schedule/noise_schedule.h"
#include "diffuse/schedule/sigma_spacing.h"

using namespace diffuse;

TEST(NoiseSchedule, LinearAlphaBarExactValues) {
  const auto s = NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
  ASSERT_EQ(s.timesteps(), 1000);
  EXPECT_NEAR(s.alphas_cumprod()[0], 0.9999, 1e-12);            // t = 1
  EXPECT_NEAR(s.alphas_cumprod()[499], 0.0785872, 5e-7);        // t = 500
  EXPECT_NEAR(s.alphas_cumprod()[999], 4.03583e-5, 5e-10);      // t = 1000
  EXPECT_NEAR(s.betas()[999], 0.02, 1e-15);
}

TEST(NoiseSchedule, CosineAlphaBarExactValue) {
  const auto s = NoiseSchedule::vp_cosine(1000, 0.008, 0.999);
  EXPECT_NEAR(s.alphas_cumprod()[499], 0.493844, 5e-7);  // t = 500
  for (double b : s.betas()) EXPECT_LE(b, 0.999);
  EXPECT_DOUBLE_EQ(s.betas().back(), 0.999);
}

TEST(NoiseSchedule, SigmaAlphaBarRoundTrip) {
  for (double ab : {0.9999, 0.5, 0.0785872, 4.03583e-5}) {
    const double sigma = NoiseSchedule::sigma_from_alpha_bar(ab);
    EXPECT_NEAR(NoiseSchedule::alpha_bar_from_sigma(sigma), ab, 1e-15);
  }
  EXPECT_NEAR(NoiseSchedule::sigma_from_alpha_bar(0.5), 1.0, 1e-15);
  const auto s = NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
  for (size_t i = 1; i < s.sigmas().size(); ++i) EXPECT_GT(s.sigmas()[i], s.sigmas()[i - 1]);
  EXPECT_NEAR(s.sigma_max(), std::sqrt((1 - 4.03583e-5) / 4.03583e-5), 1e-3);
}

TEST(NoiseSchedule, TimestepFromSigmaInterpolatesLogSigma) {
  const auto s = NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
  for (int t : {0, 1, 250, 998, 999}) EXPECT_NEAR(s.t_from_sigma(s.sigmas()[t]), t, 1e-9);
  // Halfway in log σ between grid points 10 and 11 gives t = 10.5.
  const double mid = std::sqrt(s.sigmas()[10] * s.sigmas()[11]);
  EXPECT_NEAR(s.t_from_sigma(mid), 10.5, 1e-9);
  EXPECT_EQ(s.t_from_sigma(1e-9), 0.0);
  EXPECT_EQ(s.t_from_sigma(1e9), 999.0);
  auto sig = torch::tensor({s.sigmas()[0], mid, s.sigmas()[999], 1e9}, torch::kFloat64);
  auto t = s.t_from_sigma(sig);
  EXPECT_NEAR(t[0].item<double>(), 0.0, 1e-9);
  EXPECT_NEAR(t[1].item<double>(), 10.5, 1e-9);
  EXPECT_NEAR(t[2].item<double>(), 999.0, 1e-9);
  EXPECT_NEAR(t[3].item<double>(), 999.0, 1e-9);
}

TEST(NoiseSchedule, EdmHasNoGrid) {
  const auto s = NoiseSchedule::edm(0.002, 80, 0.5);
  EXPECT_FALSE(s.is_vp());
  EXPECT_EQ(s.timesteps(), 0);
  EXPECT_THROW(NoiseSchedule::edm(1.0, 0.5, 0.5), ConfigError);
}

TEST(SigmaSpacing, KarrasEndpointsAndRho) {
  const auto sig = karras_sigmas(18, 0.002, 80.0, 7.0);
  ASSERT_EQ(sig.size(), 19u);
  EXPECT_NEAR(sig.front(), 80.0, 1e-12);
  EXPECT_NEAR(sig[17], 0.002, 1e-15);
  EXPECT_EQ(sig.back(), 0.0);
  // Midpoint of eq. 5 in σ^{1/ρ}.
  const auto three = karras_sigmas(3, 0.002, 80.0, 7.0);
  EXPECT_NEAR(three[1], std::pow((std::pow(80.0, 1 / 7.0) + std::pow(0.002, 1 / 7.0)) / 2, 7.0), 1e-12);
}

TEST(SigmaSpacing, VpSpacingsPickDiffusersTimesteps) {
  const auto s = NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
  auto leading = vp_sigmas(s, 10, TimestepSpacing::leading);   // 900, 800, …, 0
  auto trailing = vp_sigmas(s, 10, TimestepSpacing::trailing); // 999, 899, …, 99
  auto linspace = vp_sigmas(s, 10, TimestepSpacing::linspace); // 999, 888, …, 0
  ASSERT_EQ(leading.size(), 11u);
  EXPECT_EQ(leading[0], s.sigmas()[900]);
  EXPECT_EQ(leading[9], s.sigmas()[0]);
  EXPECT_EQ(trailing[0], s.sigmas()[999]);
  EXPECT_EQ(trailing[9], s.sigmas()[99]);
  EXPECT_EQ(linspace[0], s.sigmas()[999]);
  EXPECT_EQ(linspace[1], s.sigmas()[888]);
  EXPECT_EQ(linspace[9], s.sigmas()[0]);
  for (auto* v : {&leading, &trailing, &linspace}) EXPECT_EQ(v->back(), 0.0);
  auto full = vp_sigmas(s, 1000, TimestepSpacing::leading);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(full[static_cast<size_t>(i)], s.sigmas()[static_cast<size_t>(999 - i)]);
  EXPECT_THROW(vp_sigmas(s, 1001, TimestepSpacing::leading), ConfigError);
  EXPECT_THROW(timestep_spacing_from_name("uniform"), ConfigError);
}

TEST(NoiseSchedule, VeIsGeometricWithLogHalfSigmaNoiseInput) {
  const auto s = NoiseSchedule::ve(0.01, 50.0);
  EXPECT_FALSE(s.is_vp());
  EXPECT_EQ(s.timesteps(), 0);
  EXPECT_EQ(s.default_spacing(), TimestepSpacing::geometric);
  const auto sig = sampling_sigmas(s, 5, s.default_spacing());
  ASSERT_EQ(sig.size(), 6u);
  EXPECT_NEAR(sig[0], 50.0, 1e-12);
  EXPECT_NEAR(sig[4], 0.01, 1e-15);
  EXPECT_EQ(sig[5], 0.0);
  for (size_t i = 1; i < 4; ++i) EXPECT_NEAR(sig[i] / sig[i - 1], sig[i + 1] / sig[i], 1e-12);
  // A VP spacing on a schedule without a grid is its default.
  EXPECT_EQ(sampling_sigmas(s, 5, TimestepSpacing::trailing), sig);
  const auto c = s.noise_input(torch::tensor({2.0f, 0.2f}));
  EXPECT_NEAR(c[0].item<float>(), 0.0, 1e-7);  // ln(σ/2), EDM Table 1 (VE)
  EXPECT_NEAR(c[1].item<float>(), std::log(0.1), 1e-6);
  EXPECT_THROW(NoiseSchedule::ve(1.0, 0.5), ConfigError);
}

TEST(NoiseSchedule, FlowMapsSigmaToTheInterpolantTime) {
  for (double t : {0.001, 0.25, 0.5, 0.9, 0.999}) {
    const double sigma = NoiseSchedule::sigma_from_flow_t(t);
    EXPECT_NEAR(sigma, t / (1 - t), 1e-12);
    EXPECT_NEAR(NoiseSchedule::flow_t_from_sigma(sigma), t, 1e-15);
  }
  const auto s = NoiseSchedule::flow(1e-3, 999.0, 1.0);
  EXPECT_EQ(s.default_spacing(), TimestepSpacing::linear_t);
  // c_noise = 1000 t.
  const auto c = s.noise_input(torch::tensor({1.0f, 3.0f}));
  EXPECT_NEAR(c[0].item<float>(), 500.0, 1e-3);
  EXPECT_NEAR(c[1].item<float>(), 750.0, 1e-3);
  // SD3's shift s: t_m = s t/(1 + (s-1) t) is σ_m = s σ; the network's time stays unshifted.
  const auto shifted = NoiseSchedule::flow(1e-3, 999.0, 3.0);
  EXPECT_NEAR(shifted.sigma_max(), 2997.0, 1e-9);
  EXPECT_NEAR(shifted.noise_input(torch::tensor({3.0f}))[0].item<float>(), 500.0, 1e-3);
  const double t = 0.4, shift = 3.0;
  EXPECT_NEAR(NoiseSchedule::flow_t_from_sigma(shift * NoiseSchedule::sigma_from_flow_t(t)),
              shift * t / (1 + (shift - 1) * t), 1e-15);
}

TEST(SigmaSpacing, LinearTIsUniformInFlowTime) {
  const auto sig = linear_t_sigmas(4, 999.0);
  ASSERT_EQ(sig.size(), 5u);
  const double t_max = 0.999;
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(NoiseSchedule::flow_t_from_sigma(sig[static_cast<size_t>(i)]), t_max * (1 - i / 4.0), 1e-12);
  EXPECT_EQ(sig.back(), 0.0);
  // With a shift every σ is multiplied by it (the t grid bends towards t = 1).
  const auto shifted = linear_t_sigmas(4, 3 * 999.0, 3.0);
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(shifted[i], 3 * sig[i], 1e-9 * std::max(1.0, sig[i]));
  EXPECT_THROW(timestep_spacing_from_name("flow"), ConfigError);
  EXPECT_EQ(timestep_spacing_from_name("linear_t"), TimestepSpacing::linear_t);
}
