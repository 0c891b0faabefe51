// Learned reverse variance (Nichol & Dhariwal 2021): the DDPM sampler's step noise follows
// the model's β–β̃ interpolation (eq. 15), and training adds λ L_vlb (eq. 16).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "diffuse/core/seeded_noise.h"
#include "diffuse/losses/dsm_loss.h"
#include "diffuse/precond/classifier_guidance.h"
#include "diffuse/precond/precond.h"
#include "diffuse/sampling/generate.h"
#include "diffuse/sampling/sampler.h"
#include "diffuse/schedule/sigma_spacing.h"

using namespace diffuse;

namespace {

// F = (0 for the mean channels, a learnable constant v for the variance channels): with
// ε-prediction D(x; σ) = x, so every DDPM step only adds noise and that noise is visible.
class ConstantVarianceNet : public DiffusionNet {
 public:
  explicit ConstantVarianceNet(double v) {
    options_.in_channels = 1;
    options_.image_size = 4;
    options_.num_classes = 0;
    options_.learn_sigma = true;
    v_ = register_parameter("v", torch::full({1}, v));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) override {
    return torch::cat({torch::zeros_like(x), v_.expand_as(x)}, 1);
  }
  const ModelOptions& options() const override { return options_; }
  torch::Tensor v_;

 private:
  ModelOptions options_;
};

NoiseSchedule linear_schedule() { return NoiseSchedule::vp_linear(1000, 1e-4, 0.02); }

Precond constant_variance_precond(double v) {
  return Precond(std::make_shared<ConstantVarianceNet>(v), Prediction::eps, linear_schedule());
}

GenerateOptions ddpm_options() {
  GenerateOptions g;
  g.sampler = "ddpm";
  g.seeds = {3, 4};
  return g;
}

}  // namespace

TEST(LearnedVariance, LowerEndIsTheFixedPosteriorVariance) {
  // v = -1 selects β̃_t (eq. 15), which is exactly the fixed-variance DDPM step.
  auto learned = constant_variance_precond(-1.0);
  const auto with_learned = generate_samples(learned, ddpm_options());

  // The same run with the fixed variance: DDIM(η = 1) over the full grid is DDPM's step.
  auto fixed = constant_variance_precond(-1.0);
  GenerateOptions g = ddpm_options();
  g.sampler = "ddim";
  g.sampler_options.eta = 1.0;
  g.steps = 1000;
  g.spacing = TimestepSpacing::leading;
  const auto fixed_variance = generate_samples(fixed, g);
  EXPECT_LT((with_learned - fixed_variance).abs().max().item<double>(), 1e-3);
  EXPECT_GT(with_learned.abs().max().item<double>(), 0.1);  // the samples are not all zero
}

TEST(LearnedVariance, UpperEndAddsBetaNoise) {
  // Two steps σ_t → σ_{t-1} → 0 with D(x) = x: the result is x_T + √(β_t (1 + σ_{t-1}²)) z.
  const auto schedule = linear_schedule();
  const int t = 500;  // 1-indexed
  const double sigma = schedule.sigmas()[t - 1], sigma_next = schedule.sigmas()[t - 2];
  auto precond = constant_variance_precond(1.0);
  // The model's denoiser carries log Σ_θ = log β_t (v = +1) with each x̂0: no state between calls.
  const Denoiser denoiser = make_model_denoiser(precond, torch::Tensor(), 1.0, /*reverse_variance=*/true);
  const auto at_sigma = denoiser.evaluate(torch::zeros({2, 1, 4, 4}), torch::full({2}, sigma));
  ASSERT_TRUE(at_sigma.reverse_log_variance.defined());
  EXPECT_NEAR(at_sigma.reverse_log_variance.max().item<double>(), std::log(schedule.betas()[t - 1]), 1e-6);
  EXPECT_NEAR(at_sigma.reverse_log_variance.min().item<double>(), std::log(schedule.betas()[t - 1]), 1e-6);
  const double expected_std = std::sqrt(schedule.betas()[t - 1] * (1.0 + sigma_next * sigma_next));
  SeededNoise start(std::vector<uint64_t>{1, 2}, torch::kCPU);
  const auto x_start = start.randn({1, 4, 4}) * sigma;
  SeededNoise noise(std::vector<uint64_t>{7, 8}, torch::kCPU);
  const auto x = find_sampler("ddpm").fn(denoiser, x_start, {sigma, sigma_next, 0.0}, noise, SamplerOptions{}, {});
  SeededNoise replay(std::vector<uint64_t>{7, 8}, torch::kCPU);
  const auto expected = x_start + replay.randn({1, 4, 4}) * expected_std;
  EXPECT_LT((x - expected).abs().max().item<double>(), 1e-5);

  // And generate_samples computes that same std from v = +1 on the full grid.
  GenerateOptions g = ddpm_options();
  const auto sampled = generate_samples(precond, g);
  EXPECT_TRUE(torch::isfinite(sampled).all().item<bool>());
}

TEST(LearnedVariance, GenerateConvertsTheUpperEndToBetaNoise) {
  // generate_samples with v = +1 against the sampler driven by log Σ = log β_t directly,
  // with the same start and noise streams as generate_samples draws them.
  const auto schedule = linear_schedule();
  auto precond = constant_variance_precond(1.0);
  const auto generated = generate_samples(precond, ddpm_options());

  const auto sigmas = generation_sigmas(schedule, ddpm_options());
  const DenoiserFn plain = make_denoiser(precond, torch::Tensor());
  const Denoiser with_beta = [&](const torch::Tensor& x, const torch::Tensor& sigma) {
    const auto t = static_cast<size_t>(std::llround(schedule.t_from_sigma(sigma[0].item<double>())));  // 0-indexed
    return DenoiserOutput{plain(x, sigma), torch::full_like(x, std::log(schedule.betas()[t]))};
  };
  SeededNoise noise(ddpm_options().seeds, torch::kCPU);
  const auto x_start = noise.randn({1, 4, 4}) * sigmas.front();
  const auto direct = find_sampler("ddpm").fn(with_beta, x_start, sigmas, noise, SamplerOptions{}, {});
  EXPECT_LT((generated - direct).abs().max().item<double>(), 1e-3);
  // ... and differs from the fixed-variance chain (v = -1) by more than rounding.
  auto lower = constant_variance_precond(-1.0);
  EXPECT_GT((generated - generate_samples(lower, ddpm_options())).abs().max().item<double>(), 1e-2);
}

TEST(LearnedVariance, ClassifierGuidanceKeepsTheVariance) {
  // Guidance shifts the mean only: the wrapped denoiser still carries the model's log Σ.
  auto precond = constant_variance_precond(1.0);
  const Denoiser base = make_model_denoiser(precond, torch::Tensor(), 1.0, true);
  const ClassifierFn classifier = [](const torch::Tensor& x, const torch::Tensor&) {
    return torch::stack({x.flatten(1).sum(1), -x.flatten(1).sum(1)}, 1);
  };
  const auto guided = make_classifier_guided_denoiser(base, classifier, torch::tensor({0, 1}), 2.0);
  const auto x = torch::ones({2, 1, 4, 4});
  const auto sigma = torch::full({2}, 1.0);
  EXPECT_TRUE(torch::equal(guided.evaluate(x, sigma).reverse_log_variance, base.evaluate(x, sigma).reverse_log_variance));
  EXPECT_FALSE(torch::allclose(guided(x, sigma), base(x, sigma)));
}

TEST(LearnedVariance, HybridLossTrainsTheVariance) {
  auto net = std::make_shared<ConstantVarianceNet>(0.0);
  Precond precond(net, Prediction::eps, linear_schedule());
  DiffusionOptions options;
  options.vlb_weight = 0.001;
  TrainingDrawDistribution draws(options, precond->schedule());
  torch::Generator gen = at::detail::createCPUGenerator(5);
  SeededNoise data(std::vector<uint64_t>{0, 1, 2, 3}, torch::kCPU);
  const auto x0 = data.rand({1, 4, 4}) * 2 - 1;
  const auto out = dsm_loss(precond, x0, torch::Tensor(), draws, options, gen);
  // L_simple alone would not involve v: the difference is λ L_vlb > 0, and v gets a gradient.
  EXPECT_GT(out.loss.item<double>() - out.per_sample.mean().item<double>(), 0.0);
  out.loss.backward();
  ASSERT_TRUE(net->v_.grad().defined());
  EXPECT_GT(net->v_.grad().abs().item<double>(), 0.0);
}
