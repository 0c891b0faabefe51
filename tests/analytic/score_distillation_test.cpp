// Score distillation against the exact Gaussian denoiser, where each method's fixed point is
// known. With pixels as the generator and a prior N(μ, s² I):
//   SDS: the expected gradient w (g − E D(g + σε))/σ = w σ/(s² + σ²) (g − μ) vanishes only at
//        g = μ, so every particle goes to the mode, up to the jitter of its random ε;
//   VSD: with ε_φ the score of the particles' own Gaussian fit N(m, v), the gradient is
//        w (D_φ − D)/σ, which vanishes on average when (m, v) = (μ, s²): the particles become
//        samples of the prior;
//   SDI: κ of the exact inversion makes the update deterministic: x_t = μ + √(1 + σ²/s²)(g − μ)
//        and g − D(x_t) = (1 − s/√(s² + σ²))(g − μ), a pure contraction towards μ with no
//        jitter at all. (The inversion treats the render as a finished sample, so the noisy
//        point's x̂0 is closer to μ than the render; on this prior SDI is mode-seeking, more
//        so than SDS.)
// Plus finite-difference checks of the generators' gradients, LoRA's start, and exact resume.
#include <gtest/gtest.h>

#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/distill/score_distillation.h"
#include "diffuse/models/registry.h"
#include "support/analytic_denoiser.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

const std::vector<double> kMean{0.5, -0.3, 0.2, 0.0};
constexpr double kVariance = 0.09;  // s = 0.3

GuidedDenoiserFn exact_prior(const test::GaussianMixture& mixture) {
  return [mixture](const torch::Tensor& x, const torch::Tensor& sigma, double) {
    return test::mixture_denoise(mixture, x, sigma);
  };
}

// ε_φ of VSD as the exact score of the particles' own per-dimension Gaussian fit, refitted at
// every fit() call: the variational family in which VSD's fixed point is the prior itself.
class GaussianFitScore : public ParticleScore {
 public:
  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma) override {
    const auto s2 = sigma.view({-1, 1, 1, 1}).pow(2);
    return mean_ + variance_ / (variance_ + s2) * (x - mean_);
  }
  double fit(const torch::Tensor& renders, const torch::Tensor&, const torch::Tensor&) override {
    mean_ = renders.mean(0, true);
    variance_ = renders.var(0, false, true).clamp_min(1e-12);
    return 0.0;
  }
  void save(torch::serialize::OutputArchive& archive) override {
    archive.write("mean", mean_);
    archive.write("variance", variance_);
  }
  void load(torch::serialize::InputArchive& archive) override {
    archive.read("mean", mean_);
    archive.read("variance", variance_);
  }

 private:
  torch::Tensor mean_ = torch::zeros({1, 1, 2, 2}), variance_ = torch::ones({1, 1, 2, 2});
};

ScoreDistillationOptions pixel_options(ScoreDistillationMethod method, int64_t particles, int steps) {
  ScoreDistillationOptions o;
  o.method = method;
  o.particles = particles;
  o.steps = steps;
  o.lr = 0.02;
  o.seed = 7;
  return o;
}

std::vector<uint64_t> seed_list(int64_t n) {
  std::vector<uint64_t> seeds;
  for (int64_t k = 0; k < n; ++k) seeds.push_back(100 + static_cast<uint64_t>(k));
  return seeds;
}

struct Particles {
  torch::Tensor mean, std;  // per dimension, [4]
};

Particles run_pixels(const ScoreDistillationOptions& o, std::shared_ptr<ParticleScore> score = nullptr) {
  const auto mixture = test::single_gaussian(kMean, kVariance);
  auto generator = make_image_generator(o.generator, {o.particles, 1, 2, 2}, seed_list(o.particles));
  ScoreDistiller distiller(o, exact_prior(mixture), NoiseSchedule::flow(0.001, 999.0, 1.0), generator, score,
                           torch::kCPU);
  for (int k = 0; k < o.steps; ++k) distiller.step();
  const auto x = distiller.render().flatten(1).to(torch::kFloat64);
  return {x.mean(0), x.std(0)};
}

double max_error(const torch::Tensor& value, const std::vector<double>& expected) {
  return (value - torch::tensor(expected, torch::kFloat64)).abs().max().item<double>();
}

}  // namespace

TEST(ScoreDistillation, SdsSendsEveryParticleToTheModeUpToItsNoiseJitter) {
  const auto p = run_pixels(pixel_options(ScoreDistillationMethod::sds, 64, 1500));
  EXPECT_LT(max_error(p.mean, kMean), 0.03) << p.mean;
  // The prior's std is 0.3; SDS leaves only Adam's response to the fresh ε of each step.
  EXPECT_LT(p.std.max().item<double>(), 0.08) << p.std;
  EXPECT_GT(p.std.min().item<double>(), 1e-4) << "SDS's random ε keeps the particles apart";
}

TEST(ScoreDistillation, VsdParticlesReachThePriorsMeanAndVariance) {
  auto o = pixel_options(ScoreDistillationMethod::vsd, 256, 1500);
  const auto p = run_pixels(o, std::make_shared<GaussianFitScore>());
  EXPECT_LT(max_error(p.mean, kMean), 0.05) << p.mean;
  // Per-dimension std within 15% of s = 0.3 (256 particles: the std of a sample std is ~4.5%).
  EXPECT_LT(max_error(p.std, std::vector<double>(4, 0.3)), 0.045) << p.std;
}

TEST(ScoreDistillation, SdiWithTheExactInversionContractsDeterministicallyToTheMode) {
  auto o = pixel_options(ScoreDistillationMethod::sdi, 64, 600);
  o.t_max = 1.0;
  o.t_min = 0.2;
  const auto p = run_pixels(o);
  EXPECT_LT(max_error(p.mean, kMean), 1e-3) << p.mean;
  // No random ε: far below SDS's jitter.
  EXPECT_LT(p.std.max().item<double>(), 1e-3) << p.std;
}

TEST(ScoreDistillation, SdiNoiseIsTheExactInversionsNoiseForAGaussian) {
  // One step from a known render: with the exact denoiser and many inversion steps, κ must be
  // (√(1 + σ²/s²) − 1)(g − μ)/σ, so the step direction is (1 − s/√(s² + σ²))(g − μ)·w/σ.
  auto o = pixel_options(ScoreDistillationMethod::sdi, 1, 1);
  o.t_max = 0.5;  // σ = 1 on the flow schedule
  o.t_min = 0.5;
  o.sdi.inversion_steps = 2000;
  o.lr = 1e-3;
  o.weighting = DistillWeighting::uniform;
  const auto mixture = test::single_gaussian(kMean, kVariance);
  auto generator = make_image_generator(o.generator, {1, 1, 2, 2}, {3});
  ScoreDistiller distiller(o, exact_prior(mixture), NoiseSchedule::flow(0.001, 999.0, 1.0), generator, nullptr,
                           torch::kCPU);
  const auto g = distiller.render().flatten().to(torch::kFloat64);
  const auto report = distiller.step();
  const auto mu = torch::tensor(kMean, torch::kFloat64);
  const double s = std::sqrt(kVariance), sigma = 1.0;
  const auto expected_grad = (1 - s / std::sqrt(s * s + sigma * sigma)) * (g - mu) / sigma;
  EXPECT_NEAR(report.loss, 0.5 * expected_grad.pow(2).mean().item<double>(), 2e-3 * report.loss);
  // Adam's first step moves each coordinate by lr against the gradient's sign.
  const auto moved = distiller.render().flatten().to(torch::kFloat64) - g;
  EXPECT_TRUE(torch::allclose(moved, -o.lr * expected_grad.sign(), 0, 1e-6)) << moved;
}

TEST(ScoreDistillation, SigmaAtTimeFollowsEachSchedulesTimeAxis) {
  const auto flow = NoiseSchedule::flow(0.001, 999.0, 1.0);
  EXPECT_DOUBLE_EQ(sigma_at_time(flow, 0.5), 1.0);
  EXPECT_DOUBLE_EQ(sigma_at_time(flow, 0.8), 0.8 / 0.2);
  EXPECT_DOUBLE_EQ(sigma_at_time(flow, 1.0), 999.0);
  EXPECT_DOUBLE_EQ(sigma_at_time(NoiseSchedule::flow(0.001, 999.0, 3.0), 0.5), 3.0);
  const auto edm = NoiseSchedule::edm(0.002, 80.0, 0.5);
  EXPECT_NEAR(sigma_at_time(edm, 0.0), 0.002, 1e-15);
  EXPECT_NEAR(sigma_at_time(edm, 1.0), 80.0, 1e-12);
  EXPECT_NEAR(sigma_at_time(edm, 0.5), std::sqrt(0.002 * 80.0), 1e-12);
  const auto vp = NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
  EXPECT_NEAR(sigma_at_time(vp, 0.0), vp.sigmas().front(), 1e-12);
  EXPECT_NEAR(sigma_at_time(vp, 1.0), vp.sigmas().back(), 1e-9);
  EXPECT_NEAR(sigma_at_time(vp, 500.0 / 999.0), vp.sigmas()[500], 1e-9);
}

// ⟨∇ψ f, v⟩ against (f(ψ + h v) − f(ψ − h v))/2h for f = Σ render · R, in float64.
void check_generator_gradient(const GeneratorOptions& options, const torch::Tensor& azimuths) {
  auto generator = make_image_generator(options, {2, 3, 6, 5}, {11, 12});
  generator->to(torch::kFloat64);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto weights = torch::randn({2, 3, 6, 5}, gen, torch::kFloat64);
  const auto f = [&] { return (generator->render(azimuths) * weights).sum(); };
  generator->zero_grad();
  f().backward();
  double analytic = 0.0;
  std::vector<torch::Tensor> directions;
  for (auto& p : generator->parameters()) {
    directions.push_back(torch::randn(p.sizes(), gen, torch::kFloat64));
    analytic += (p.grad() * directions.back()).sum().item<double>();
  }
  const double h = 1e-6;
  const auto shifted = [&](double by) {
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (auto& p : generator->parameters()) p.add_(directions[i++] * by);
    const double value = f().item<double>();
    i = 0;
    for (auto& p : generator->parameters()) p.sub_(directions[i++] * by);
    return value;
  };
  const double numeric = (shifted(h) - shifted(-h)) / (2 * h);
  EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric)));
  EXPECT_GT(std::abs(analytic), 1e-3) << "a gradient that vanishes checks nothing";
}

TEST(ImageGenerators, FourierFieldGradientMatchesFiniteDifferences) {
  GeneratorOptions o;
  o.kind = GeneratorKind::field;
  o.field.features = 8;
  o.field.hidden = 16;
  o.field.layers = 2;
  check_generator_gradient(o, {});
}

TEST(ImageGenerators, SirenFieldGradientMatchesFiniteDifferences) {
  GeneratorOptions o;
  o.kind = GeneratorKind::field;
  o.field.encoding = FieldEncoding::siren;
  o.field.hidden = 16;
  o.field.layers = 2;
  check_generator_gradient(o, {});
}

TEST(ImageGenerators, VolumeRendererGradientMatchesFiniteDifferences) {
  GeneratorOptions o;
  o.kind = GeneratorKind::volume;
  o.volume.grid = 5;
  o.volume.ray_samples = 12;
  check_generator_gradient(o, torch::tensor({0.3, 2.5}, torch::kFloat64));
}

TEST(ImageGenerators, VolumeRendersBackgroundThroughEmptySpaceAndColourThroughAnOpaqueCube) {
  GeneratorOptions o;
  o.kind = GeneratorKind::volume;
  o.volume.grid = 4;
  o.volume.ray_samples = 64;
  o.volume.camera_distance = 6.0;
  auto generator = make_image_generator(o, {1, 1, 9, 9}, {0});
  torch::NoGradGuard no_grad;
  auto voxels = generator->parameters().front();
  voxels.select(1, 0).fill_(-40.0);  // density softplus(-40) ≈ 0
  const auto az = torch::tensor({1.0}, torch::kFloat64);
  EXPECT_NEAR(generator->render(az).max().item<double>(), -1.0, 1e-6);
  voxels.select(1, 0).fill_(40.0);   // opaque
  voxels.select(1, 1).fill_(40.0);   // colour tanh(40) = 1
  const auto image = generator->render(az);
  EXPECT_NEAR(image[0][0][4][4].item<double>(), 1.0, 1e-5) << "the centre ray hits the cube";
  EXPECT_NEAR(image[0][0][0][0].item<double>(), -1.0, 1e-5) << "a corner ray misses it (45° field of view from 6 units away)";
}

TEST(ImageGenerators, ParticleStartsDependOnlyOnTheirOwnSeed) {
  GeneratorOptions o;
  o.kind = GeneratorKind::field;
  const auto two = make_image_generator(o, {2, 1, 4, 4}, {5, 6});
  const auto one = make_image_generator(o, {1, 1, 4, 4}, {6});
  // The parameters exactly; the renders to rounding (batched matmuls may block differently).
  const auto p2 = two->parameters(), p1 = one->parameters();
  ASSERT_EQ(p2.size(), p1.size());
  for (size_t i = 0; i < p2.size(); ++i) EXPECT_TRUE(torch::equal(p2[i][1], p1[i][0])) << "parameter " << i;
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(two->render({})[1], one->render({})[0], 1e-5, 1e-6));
  EXPECT_FALSE(torch::allclose(two->render({})[0], two->render({})[1], 1e-3, 1e-3));
}

TEST(ScoreDistillation, LoraParticleScoreStartsAsThePriorAndLearnsTheRenders) {
  ModelOptions m;
  m.in_channels = 1;
  m.image_size = 8;
  m.num_classes = 0;
  m.unet.base_channels = 8;
  m.unet.channel_mult = {1};
  m.unet.num_res_blocks = 1;
  m.unet.attention_resolutions = {};
  m.unet.num_groups = 4;
  torch::manual_seed(0);  // the tiny network's initial weights only
  auto net = make_model(m);
  const auto schedule = NoiseSchedule::edm(0.002, 80.0, 0.5);
  Precond prior(net, Prediction::edm, schedule);
  Precond copy(make_model(m), Prediction::edm, schedule);
  {
    torch::NoGradGuard no_grad;
    auto src = prior->named_parameters(), dst = copy->named_parameters();
    for (const auto& item : src) dst[item.key()].copy_(item.value());
  }
  VsdOptions v;
  v.lora_rank = 2;
  v.lr = 1e-2;
  auto score = make_network_particle_score(copy, {}, v, 1);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
  const auto renders = torch::rand({4, 1, 8, 8}, gen) * 2 - 1;
  const auto sigma = torch::full({4}, 0.5);
  const auto noise = torch::randn({4, 1, 8, 8}, gen);
  torch::NoGradGuard outer;
  const auto x = renders + 0.5 * noise;
  EXPECT_TRUE(torch::allclose(score->denoise(x, sigma), prior->denoise(x, sigma, {}), 1e-5, 1e-6));
  double first = 0.0, last = 0.0;
  {
    torch::AutoGradMode grad_mode(true);
    for (int k = 0; k < 60; ++k) {
      const double loss = score->fit(renders, sigma, noise);
      if (k == 0) first = loss;
      last = loss;
    }
  }
  EXPECT_LT(last, 0.5 * first);
  EXPECT_FALSE(torch::allclose(score->denoise(x, sigma), prior->denoise(x, sigma, {}), 1e-3, 1e-3));
  // The prior's own weights are untouched.
  for (const auto& p : prior->parameters()) EXPECT_FALSE(p.grad().defined() && p.grad().abs().sum().item<double>() > 0);
}

TEST(ScoreDistillation, ResumingFromASavedStateContinuesBitForBit) {
  test::TempDir dir;
  const auto mixture = test::single_gaussian(kMean, kVariance);
  auto o = pixel_options(ScoreDistillationMethod::sds, 3, 10);
  o.generator.kind = GeneratorKind::field;
  o.generator.field.hidden = 8;
  const auto make = [&] {
    return ScoreDistiller(o, exact_prior(mixture), NoiseSchedule::flow(0.001, 999.0, 1.0),
                          make_image_generator(o.generator, {3, 1, 2, 2}, seed_list(3)), nullptr, torch::kCPU);
  };
  auto straight = make();
  for (int k = 0; k < 10; ++k) straight.step();
  auto first = make();
  for (int k = 0; k < 4; ++k) first.step();
  first.save(dir.file("state.pt"));
  auto second = make();
  second.load(dir.file("state.pt"));
  EXPECT_EQ(second.steps_done(), 4);
  for (int k = 4; k < 10; ++k) second.step();
  EXPECT_TRUE(torch::equal(second.render(), straight.render()));
}

TEST(ScoreDistillationConfig, ParsesEmitsAndRefusesKeysOfOtherMethods) {
  auto root = ConfigNode::load_string(
      "method: vsd\nparticles: 3\ngenerator: {kind: field, field: {encoding: siren, hidden: 32}}\n"
      "vsd: {network: copy, lr: 0.001}\nclass: 2\ncfg: 3\n", "<vsd>");
  const auto o = parse_score_distillation(root);
  EXPECT_EQ(o.method, ScoreDistillationMethod::vsd);
  EXPECT_EQ(o.generator.field.encoding, FieldEncoding::siren);
  EXPECT_EQ(o.vsd.network, ParticleScoreNetwork::copy);
  auto again = ConfigNode::load_string(to_yaml_string(emit_score_distillation(o)), "<emitted>");
  EXPECT_EQ(to_yaml_string(emit_score_distillation(parse_score_distillation(again))),
            to_yaml_string(emit_score_distillation(o)));

  const auto error_of = [](const std::string& text) {
    return test::error_message<ConfigError>([&] {
      auto n = ConfigNode::load_string(text, "<bad>");
      parse_score_distillation(n);
    });
  };
  EXPECT_CONTAINS(error_of("method: sds\nvsd: {lr: 0.1}\n"), "vsd");
  EXPECT_CONTAINS(error_of("particles: 2\n"), "method: is required");
  EXPECT_CONTAINS(error_of("method: sdi\nt_min: 0.9\nt_max: 0.5\n"), "must not exceed t_max");
  EXPECT_CONTAINS(error_of("method: sds\ngenerator: {kind: pixels, volume: {grid: 8}}\n"), "volume");
  EXPECT_CONTAINS(error_of("method: sds\ngenerator: {kind: volume, volume: {camera_distance: 1}}\n"),
                  "camera_distance");
  EXPECT_CONTAINS(error_of("method: vsd\nvsd: {network: copy, lora_rank: 4}\n"), "lora_rank");
  EXPECT_CONTAINS(error_of("method: sds\nclass: 1\nclasses: [1, 2]\n"), "give class or classes, not both");
  EXPECT_CONTAINS(error_of("method: sds\nclasses: [1, -2]\n"), "found -2");
}

TEST(ScoreDistillationConfig, ClassesAreCycledOverTheParticles) {
  auto root = ConfigNode::load_string("method: sds\nparticles: 5\nclasses: [3, 7]\n", "<classes>");
  const auto o = parse_score_distillation(root);
  std::vector<int64_t> labels;
  for (int64_t k = 0; k < o.particles; ++k) labels.push_back(particle_label(o, k));
  EXPECT_EQ(labels, (std::vector<int64_t>{3, 7, 3, 7, 3}));
  ScoreDistillationOptions single;
  single.class_label = 4;
  EXPECT_EQ(particle_label(single, 9), 4);
}
