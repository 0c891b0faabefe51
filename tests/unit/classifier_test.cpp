// The noise-conditional classifier (UNet encoder + attention pooling) and its σ
// conditioning: shapes, gradients to every parameter, features, parameter counts through the
// registry, σ = 0 on every schedule, classifier.noise none.
#include "diffuse/models/classifier.h"

#include <gtest/gtest.h>

#include "diffuse/core/error.h"
#include "diffuse/models/registry.h"
#include "diffuse/precond/classifier_guidance.h"

using namespace diffuse;

namespace {

ModelOptions tiny_classifier() {
  ModelOptions m;
  m.arch = ModelArch::classifier;
  m.in_channels = 1;
  m.image_size = 12;
  m.num_classes = 5;
  m.unet.base_channels = 16;
  m.unet.channel_mult = {1, 2};
  m.unet.num_res_blocks = 1;
  m.unet.attention_resolutions = {6};
  m.unet.num_groups = 8;
  return m;
}

// Zero-initialised residual branches make a fresh network ignore its noise input; perturb
// every weight so that each one matters.
void perturb(torch::nn::Module& net) {
  torch::NoGradGuard no_grad;
  for (auto& p : net.parameters()) p.add_(torch::randn_like(p) * 0.1);
}

}  // namespace

TEST(Classifier, LogitsFeaturesAndGradients) {
  torch::manual_seed(0);
  auto net = make_classifier(tiny_classifier());
  perturb(*net);
  const auto x = torch::randn({3, 1, 12, 12});
  const auto noise = torch::tensor({0.0f, 100.0f, 500.0f});
  const auto logits = net->forward(x, noise);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(net->features(x, noise).sizes(), (std::vector<int64_t>{3, 32}));
  // The noise level reaches the output.
  EXPECT_FALSE(torch::allclose(net->forward(x, torch::tensor({0.0f, 0.0f, 0.0f})), logits));
  torch::nn::functional::cross_entropy(logits, torch::tensor({0, 3, 4})).backward();
  for (const auto& p : net->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
  EXPECT_EQ(count_model_parameters(tiny_classifier()), count_parameters(*net));
  EXPECT_THROW(make_model(tiny_classifier()), ConfigError);
  auto no_classes = tiny_classifier();
  no_classes.num_classes = 0;
  EXPECT_THROW(make_classifier(no_classes), ConfigError);
  EXPECT_THROW(net->forward(torch::randn({3, 2, 12, 12}), noise), DataError);
}

TEST(Classifier, SigmaZeroIsDefinedOnEverySchedule) {
  torch::manual_seed(0);
  const auto x = torch::randn({2, 1, 12, 12});
  const auto zero = torch::zeros({2});
  for (const auto& schedule :
       {NoiseSchedule::vp_linear(1000, 1e-4, 0.02), NoiseSchedule::edm(0.002, 80, 0.5),
        NoiseSchedule::ve(0.01, 50), NoiseSchedule::flow(1e-3, 999, 1)}) {
    NoisyClassifier classifier(make_classifier(tiny_classifier()), schedule,
                               ClassifierNoise::noisy);
    EXPECT_TRUE(torch::isfinite(classifier->forward(x, zero)).all().item<bool>());
  }
}

TEST(Classifier, NoiseNoneSeesOnlyTheScaledImage) {
  // c_noise is constant, so an input scaled by √(1+σ²) at σ gives the σ = 0 logits.
  torch::manual_seed(0);
  NoisyClassifier classifier(make_classifier(tiny_classifier()), NoiseSchedule::ve(0.01, 50),
                             ClassifierNoise::none);
  perturb(classifier->net());
  const auto x = torch::randn({2, 1, 12, 12});
  const auto clean = classifier->forward(x, torch::zeros({2}));
  const auto scaled = classifier->forward(x * std::sqrt(10.0f), torch::full({2}, 3.0f));
  EXPECT_TRUE(torch::allclose(clean, scaled, 1e-4, 1e-4));
  NoisyClassifier noisy(classifier->net_ptr(), NoiseSchedule::ve(0.01, 50), ClassifierNoise::noisy);
  EXPECT_FALSE(torch::allclose(noisy->forward(x * std::sqrt(10.0f), torch::full({2}, 3.0f)), scaled,
                               1e-4, 1e-4));
}

TEST(ClassifierGuidanceWrapper, ComposesWithAnyDenoiserAndNeedsLabels) {
  // Logits (0, c Σx): at x = 0, ∇ log p(1|x) = c/2 per element and ∇ log p(0|x) = -c/2.
  const double c = 0.4, scale = 3.0;
  const ClassifierFn linear = [c](const torch::Tensor& x, const torch::Tensor&) {
    const auto total = x.flatten(1).sum(1, /*keepdim=*/true);
    return torch::cat({torch::zeros_like(total), c * total}, 1);
  };
  const DenoiserFn base = [](const torch::Tensor& x, const torch::Tensor&) {
    return torch::full_like(x, 7.0);
  };
  const auto guided = make_classifier_guided_denoiser(base, linear, torch::tensor({1, 0}), scale);
  const auto d = guided(torch::zeros({2, 1, 2, 2}, torch::kFloat64),
                        torch::tensor({2.0, 0.5}, torch::kFloat64));
  EXPECT_NEAR(d[0][0][0][0].item<double>(), 7.0 + scale * 4.0 * c / 2, 1e-12);
  EXPECT_NEAR(d[1][0][1][1].item<double>(), 7.0 - scale * 0.25 * c / 2, 1e-12);
  EXPECT_THROW(make_classifier_guided_denoiser(base, linear, torch::Tensor(), 1.0), ConfigError);
}
