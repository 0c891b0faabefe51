// The sampler name table, NFE counts, progress reporting, clipping and input checks.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/core/error.h"
#include "diffuse/sampling/sampler.h"
#include "diffuse/sampling/sampler_common.h"
#include "diffuse/schedule/sigma_spacing.h"

using namespace diffuse;

namespace {

SamplerOptions noisy_options() {
  SamplerOptions options;
  options.langevin_steps = 3;
  options.corrector_steps = 2;
  options.eta = 1.0;
  options.s_churn = 10.0;
  options.s_tmin = 0.0;
  options.s_tmax = 1e9;
  return options;
}

}  // namespace

TEST(SamplerTable, FindsEveryName) {
  for (const char* name : {"ddpm", "ddim", "euler", "heun", "dpmpp2m", "euler_a", "sde_ve", "sde_vp",
                           "langevin", "pc"}) {
    const auto& entry = find_sampler(name);
    EXPECT_EQ(std::string(entry.name), name);
    EXPECT_GT(std::string(entry.description).size(), 10u);
    EXPECT_TRUE(entry.fn);
  }
}

TEST(SamplerTable, UnknownNameListsValidOnes) {
  try {
    find_sampler("dpm++");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("dpm++"), std::string::npos);
    for (const auto& entry : sampler_table()) EXPECT_NE(message.find(entry.name), std::string::npos) << entry.name;
  }
}

TEST(SamplerTable, NfeForDefaultStepCounts) {
  EXPECT_EQ(find_sampler("ddpm").nfe(1000, SamplerOptions{}), 1000);
  EXPECT_EQ(find_sampler("ddim").nfe(50, SamplerOptions{}), 50);
  EXPECT_EQ(find_sampler("euler").nfe(50, SamplerOptions{}), 50);
  EXPECT_EQ(find_sampler("heun").nfe(18, SamplerOptions{}), 35);
  EXPECT_EQ(find_sampler("dpmpp2m").nfe(20, SamplerOptions{}), 20);
  EXPECT_EQ(find_sampler("euler_a").nfe(50, SamplerOptions{}), 50);
  EXPECT_EQ(find_sampler("sde_ve").nfe(1000, SamplerOptions{}), 1000);
  SamplerOptions options;
  options.langevin_steps = 100;
  EXPECT_EQ(find_sampler("langevin").nfe(10, options), 1001);  // L·T + the denoising step
  options.predictor = "heun";
  options.corrector_steps = 2;
  EXPECT_EQ(find_sampler("pc").nfe(18, options), 35 + 2 * 17);
}

TEST(SamplerTable, NfeMatchesDenoiserCallsAndProgress) {
  for (const auto& entry : sampler_table()) {
    for (int steps : {1, 2, 7}) {
      int64_t calls = 0;
      const DenoiserFn counting = [&calls](const torch::Tensor& x, const torch::Tensor& sigma) {
        ++calls;
        EXPECT_EQ(sigma.sizes(), (std::vector<int64_t>{x.size(0)}));
        return 0.5 * x;
      };
      std::vector<std::pair<int64_t, int64_t>> reports;
      int64_t last_step = 0;
      const SamplerCallback progress = [&reports, &last_step, &entry, steps](const SamplerStep& step) {
        reports.emplace_back(step.nfe_done, step.nfe_total);
        // The step index never goes back and stays within the σ list; x̂0 is the 0.5 x returned.
        EXPECT_GE(step.step, last_step) << entry.name;
        EXPECT_LT(step.step, steps + (std::string(entry.name) == "langevin" ? 1 : 0)) << entry.name;
        EXPECT_TRUE(torch::allclose(step.denoised, 0.5 * step.x)) << entry.name;
        last_step = step.step;
      };
      SeededNoise noise({3, 4}, torch::kCPU);
      const auto sigmas = karras_sigmas(steps, 0.002, 80.0);
      const auto x = entry.fn(counting, 80.0 * noise.randn({1, 2, 2}), sigmas, noise, noisy_options(), progress);
      EXPECT_EQ(x.sizes(), (std::vector<int64_t>{2, 1, 2, 2}));
      EXPECT_TRUE(torch::isfinite(x).all().item<bool>()) << entry.name;
      EXPECT_EQ(calls, entry.nfe(steps, noisy_options())) << entry.name << " steps " << steps;
      ASSERT_EQ(static_cast<int64_t>(reports.size()), calls) << entry.name;
      for (size_t i = 0; i < reports.size(); ++i) {
        EXPECT_EQ(reports[i].first, static_cast<int64_t>(i) + 1) << entry.name;
        EXPECT_EQ(reports[i].second, calls) << entry.name;
      }
    }
  }
}

TEST(SamplerTable, HeunStoppingAboveZeroCorrectsEveryStep) {
  auto sigmas = karras_sigmas(6, 0.002, 80.0);
  sigmas.pop_back();  // 5 steps ending at σ_min
  int64_t calls = 0, reported_total = 0;
  const DenoiserFn counting = [&calls](const torch::Tensor& x, const torch::Tensor&) {
    ++calls;
    return 0.5 * x;
  };
  SeededNoise noise({0}, torch::kCPU);
  find_sampler("heun").fn(counting, 80.0 * noise.randn({2}), sigmas, noise, SamplerOptions{},
                          [&](const SamplerStep& step) { reported_total = step.nfe_total; });
  EXPECT_EQ(calls, 10);
  EXPECT_EQ(reported_total, 10);
}

TEST(SamplerTable, EverySamplerClipsTheDenoiser) {
  // A denoiser far outside the data range: with clip_denoised = 1 every sampler ends in
  // [-1, 1], since its last step into σ = 0 lands on the clamped D.
  const DenoiserFn wild = [](const torch::Tensor& x, const torch::Tensor&) { return 10.0 * torch::ones_like(x); };
  for (const auto& entry : sampler_table()) {
    auto options = noisy_options();
    options.clip_denoised = 1.0;
    SeededNoise noise({0, 1, 2}, torch::kCPU);
    const auto x = entry.fn(wild, 80.0 * noise.randn({4}), karras_sigmas(5, 0.002, 80.0), noise, options, {});
    EXPECT_LE(x.abs().max().item<double>(), 1.0 + 1e-4) << entry.name;
    EXPECT_GE(x.abs().max().item<double>(), 1.0 - 1e-4) << entry.name;
  }
}

TEST(SamplerTable, RejectsBadSigmaListsAndBatchMismatch) {
  const DenoiserFn identity = [](const torch::Tensor& x, const torch::Tensor&) { return x; };
  SeededNoise noise({0, 1}, torch::kCPU);
  const auto x = noise.randn({2});
  const std::vector<std::vector<double>> bad{{}, {1.0}, {1.0, 2.0, 0.0}, {2.0, 0.0, 0.0},
                                             {2.0, 1.0, 1.0, 0.0}, {-1.0, 0.0}, {NAN, 0.0}};
  for (const auto& entry : sampler_table()) {
    for (const auto& sigmas : bad)
      EXPECT_THROW(entry.fn(identity, x, sigmas, noise, SamplerOptions{}, {}), ConfigError) << entry.name;
    SeededNoise three({0, 1, 2}, torch::kCPU);
    EXPECT_THROW(entry.fn(identity, x, {1.0, 0.0}, three, SamplerOptions{}, {}), Error) << entry.name;
  }
}

TEST(SamplerCommon, AncestralSigmasSplitTheStep) {
  const auto deterministic = ancestral_sigmas(2.0, 1.0, 0.0);
  EXPECT_EQ(deterministic.down, 1.0);
  EXPECT_EQ(deterministic.up, 0.0);
  // η = 1: σ_up² = σ'²(σ² - σ'²)/σ² = 3/4, σ_down² + σ_up² = σ'².
  const auto ddpm = ancestral_sigmas(2.0, 1.0, 1.0);
  EXPECT_NEAR(ddpm.up, std::sqrt(0.75), 1e-15);
  EXPECT_NEAR(ddpm.down * ddpm.down + ddpm.up * ddpm.up, 1.0, 1e-15);
  const auto to_zero = ancestral_sigmas(2.0, 0.0, 1.0);
  EXPECT_EQ(to_zero.down, 0.0);
  EXPECT_EQ(to_zero.up, 0.0);
  // σ_up never exceeds σ'.
  EXPECT_LE(ancestral_sigmas(2.0, 1.0, 5.0).up, 1.0);
}

TEST(SamplerCommon, SigmaBatchFollowsFloat64) {
  EXPECT_EQ(sigma_batch(torch::zeros({3, 2}, torch::kFloat64), 0.1).scalar_type(), torch::kFloat64);
  EXPECT_EQ(sigma_batch(torch::zeros({3, 2}, torch::kFloat16), 0.1).scalar_type(), torch::kFloat32);
  EXPECT_EQ(sigma_batch(torch::zeros({3, 2}), 0.1).sizes(), (std::vector<int64_t>{3}));
}
