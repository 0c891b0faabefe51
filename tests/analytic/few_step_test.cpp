// Few-step generation against the exact Gaussian denoiser, where the probability-flow ODE map
// is known in closed form (DESIGN §5): the straightness measure of Liu et al. 2023 on the exact
// flow equals its quadrature; reflow on exact couplings gives a velocity field whose one
// Euler step is the ODE solution; the consistency parameterisation satisfies f(x, σ_min) = x
// exactly; consistency distillation from the exact teacher learns the ODE map; consistency
// sampling costs one network evaluation per step.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

#include "diffuse/data/coupling_dataset.h"
#include "diffuse/data/data_loader.h"
#include "diffuse/distill/consistency_distillation.h"
#include "diffuse/distill/reflow.h"
#include "diffuse/losses/dsm_loss.h"
#include "diffuse/sampling/consistency.h"
#include "diffuse/schedule/noise_schedule.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "diffuse/train/ema.h"
#include "support/analytic_denoiser.h"
#include "support/sampler_checks.h"
#include "support/test_paths.h"

using namespace diffuse;
using namespace diffuse::test;

namespace {

const std::vector<double> kMean{0.5, -1.0, 0.25, 2.0};
constexpr double kVariance = 0.25;  // s = 0.5
constexpr double kSigmaMin = 1e-3, kSigmaMax = 999.0;

NoiseSchedule flow_schedule() { return NoiseSchedule::flow(kSigmaMin, kSigmaMax, 1.0); }

Precond exact_teacher() {
  return Precond(std::make_shared<ExactVelocityNet>(single_gaussian(kMean, kVariance)), Prediction::flow,
                 flow_schedule());
}

// A flow network small enough to fit in a test: F(x_t, t) = a(t) x_t + b(t) with a and b
// polynomials of degree 7 in t (b per pixel), in the Chebyshev basis T_k(2t − 1), which keeps
// the fit well conditioned. The exact velocity of a linear coupling and the
// consistency map of a Gaussian are of this form (up to the polynomial fit of their t-dependence).
class AffineInTimeNet : public DiffusionNet {
 public:
  AffineInTimeNet() {
    options_.in_channels = 1;
    options_.image_size = 2;
    options_.num_classes = 0;
    scale_ = register_parameter("scale", torch::zeros({kDegree + 1}));
    bias_ = register_parameter("bias", torch::zeros({4, kDegree + 1}));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_cond, const torch::Tensor&) override {
    const auto u = 2.0 * noise_cond.to(torch::kFloat32) / 1000.0 - 1.0;
    std::vector<torch::Tensor> basis{torch::ones_like(u), u};
    while (static_cast<int>(basis.size()) <= kDegree)
      basis.push_back(2.0 * u * basis.back() - basis[basis.size() - 2]);
    const auto phi = torch::stack(basis, 1);  // [B, K]
    const auto a = phi.matmul(scale_).view({-1, 1, 1, 1});
    const auto b = phi.matmul(bias_.t()).view({-1, 1, 2, 2});
    return a * x.to(torch::kFloat32) + b;
  }
  const ModelOptions& options() const override { return options_; }

 private:
  static constexpr int kDegree = 7;
  ModelOptions options_;
  torch::Tensor scale_, bias_;
};

// σ_max z for `count` seeds from `first`, as [B, 1, 2, 2].
torch::Tensor start_noise(uint64_t first, int64_t count) {
  SeededNoise noise(seed_range(first, first + static_cast<uint64_t>(count)), torch::kCPU);
  return kSigmaMax * noise.randn({1, 2, 2});
}

// The exact end point of the ODE from x̃ = σ_max z: μ + s/√(s² + σ_max²) (x̃ − μ).
torch::Tensor exact_map(const torch::Tensor& x_start) {
  return gaussian_flow(x_start.to(torch::kFloat64).view({-1, 4}), kSigmaMax, 0.0, kMean, kVariance)
      .view({-1, 1, 2, 2});
}

// One Euler step of a flow model from σ_max to 0: the one-step sample.
torch::Tensor one_euler_step(Precond& model, const torch::Tensor& x_start) {
  torch::NoGradGuard no_grad;
  const auto sigma = torch::full({x_start.size(0)}, kSigmaMax);
  return model->denoise(x_start, sigma, {}).to(torch::kFloat64);
}

// Cosine decay from lr to lr/100: the fits below end converged, not jittering at the Adam noise floor.
void set_learning_rate(torch::optim::Adam& adam, int step, int steps, double lr) {
  const double value = lr * (0.01 + 0.99 * 0.5 * (1.0 + std::cos(M_PI * step / steps)));
  for (auto& group : adam.param_groups()) static_cast<torch::optim::AdamOptions&>(group.options()).lr(value);
}

GenerateOptions measure_options(int steps, int64_t samples) {
  GenerateOptions g;
  g.steps = steps;
  g.batch_size = 256;
  for (int64_t i = 0; i < samples; ++i) g.seeds.push_back(static_cast<uint64_t>(5000 + i));
  return g;
}

// The straightness of the exact Gaussian flow by quadrature: along x_t = (1-t) μ + sd(t) a with
// sd(t) = √((1-t)² s² + t²) and a = (x̃_0 − μ)/√(s² + σ_0²), the velocity is −μ + sd'(t) a and
// the chord over [0, t_0] is −μ + (sd(t_0) − s)/t_0 a, so
// S = E[a²] (1/t_0) ∫_0^{t_0} (sd'(t) − (sd(t_0) − s)/t_0)² dt.
double gaussian_straightness(double mean_a_sq) {
  const double s = std::sqrt(kVariance), t0 = NoiseSchedule::flow_t_from_sigma(kSigmaMax);
  const auto sd = [&](double t) { return std::sqrt((1 - t) * (1 - t) * s * s + t * t); };
  const auto dsd = [&](double t) { return (t - (1 - t) * s * s) / sd(t); };
  const double chord = (sd(t0) - s) / t0;
  constexpr int kPoints = 20000;  // midpoint rule
  double integral = 0.0;
  for (int i = 0; i < kPoints; ++i) {
    const double t = (i + 0.5) * t0 / kPoints;
    integral += (dsd(t) - chord) * (dsd(t) - chord) * t0 / kPoints;
  }
  return mean_a_sq * integral / t0;
}

}  // namespace

TEST(Straightness, MatchesTheQuadratureOfTheExactGaussianFlow) {
  auto teacher = exact_teacher();
  const auto options = measure_options(400, 512);
  const auto report = measure_straightness(teacher, options);
  // E[a²] over the same seeds: a = (σ_max z − μ)/√(s² + σ_max²).
  const auto mean = torch::tensor(kMean, torch::kFloat64).view({1, 1, 2, 2});
  SeededNoise noise(options.seeds, torch::kCPU);
  const auto a = (kSigmaMax * noise.randn({1, 2, 2}, torch::kFloat64) - mean) / std::sqrt(kVariance + kSigmaMax * kSigmaMax);
  const double expected = gaussian_straightness(a.square().mean().item<double>());
  std::printf("straightness %.5f, quadrature %.5f, one-step gap %.4f\n", report.straightness, expected,
              report.one_step_gap);
  EXPECT_NEAR(report.straightness, expected, 0.02 * expected);
  EXPECT_EQ(report.steps, 400);
  EXPECT_EQ(report.deviation.size(), 400u);
  // Independent noise and data: the paths bend, and one Euler step misses by about s·|z|.
  EXPECT_GT(report.one_step_gap, 0.2);
}

TEST(Reflow, ExactCouplingsGiveAFieldWhoseOneEulerStepIsTheOdeSolution) {
  TempDir dir;
  auto teacher = exact_teacher();
  CouplingOptions couplings;
  couplings.generate.sampler = "heun";
  couplings.generate.steps = 64;
  couplings.generate.spacing = TimestepSpacing::linear_t;
  couplings.generate.batch_size = 512;
  couplings.pairs = 4096;
  couplings.chunk_size = 1500;  // three files, the last one short
  couplings.teacher = "exact";
  EXPECT_EQ(write_couplings(teacher, {}, couplings, dir.file("pairs")), 4096);
  // Everything is there: a second call draws nothing.
  EXPECT_EQ(write_couplings(teacher, {}, couplings, dir.file("pairs")), 0);

  DataOptions data;
  data.type = DatasetType::couplings;
  data.path = dir.file("pairs");
  auto dataset = std::make_shared<CouplingDataset>(data);
  ASSERT_EQ(dataset->info().size, 4096);
  // Each coupling is the teacher's ODE end point of its own noise.
  const auto item = dataset->get(1234);
  EXPECT_LT((exact_map(kSigmaMax * item.noise.unsqueeze(0)).view({1, 2, 2}) - item.image.to(torch::kFloat64))
                .abs().max().item<double>(), 1e-3);

  DiffusionOptions diffusion;
  diffusion.schedule = ScheduleKind::flow;
  diffusion.prediction = Prediction::flow;
  diffusion.sigma_distribution = SigmaDistribution::uniform_t;
  diffusion.sigma_min = kSigmaMin;
  diffusion.sigma_max = kSigmaMax;
  Precond student(std::make_shared<AffineInTimeNet>(), Prediction::flow, flow_schedule());
  TrainingDrawDistribution draws(diffusion, flow_schedule());
  LoaderOptions lo;
  lo.batch_size = 512;
  lo.num_workers = 0;
  DataLoader loader(dataset, lo);
  torch::optim::Adam adam(student->parameters(), torch::optim::AdamOptions(0.03));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  constexpr int kSteps = 3000;
  for (int step = 0; step < kSteps; ++step) {
    set_learning_rate(adam, step, kSteps, 0.03);
    Batch batch = loader.next();
    TrainingDraw draw = draws.draw(batch.images, {}, -1, gen);
    draw.noise = batch.noise;  // the coupling, as the trainer does for data.type couplings
    adam.zero_grad();
    dsm_loss(student, batch.images, draw, diffusion).loss.backward();
    adam.step();
  }
  const auto x_start = start_noise(9000, 256);
  const double reflowed = (one_euler_step(student, x_start) - exact_map(x_start)).abs().max().item<double>();
  const double teacher_error = (one_euler_step(teacher, x_start) - exact_map(x_start)).abs().max().item<double>();
  const auto before = measure_straightness(teacher, measure_options(20, 256));
  const auto after = measure_straightness(student, measure_options(20, 256));
  std::printf("one Euler step: reflowed max error %.4f, teacher %.4f; straightness %.5f -> %.6f\n", reflowed,
              teacher_error, before.straightness, after.straightness);
  EXPECT_LT(reflowed, 0.01);
  EXPECT_GT(teacher_error, 0.5);
  EXPECT_LT(after.straightness, 0.01 * before.straightness);
  EXPECT_LT(after.one_step_gap, 0.01);
}

TEST(Couplings, RefuseOtherSettingsAndStochasticSamplers) {
  TempDir dir;
  auto teacher = exact_teacher();
  CouplingOptions couplings;
  couplings.generate.sampler = "euler";
  couplings.generate.steps = 4;
  couplings.pairs = 8;
  write_couplings(teacher, {}, couplings, dir.file("pairs"));
  couplings.generate.steps = 5;
  try {
    write_couplings(teacher, {}, couplings, dir.file("pairs"));
    FAIL() << "other settings were accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("steps = 4, not 5"), std::string::npos) << e.what();
  }
  couplings.generate.steps = 4;
  couplings.generate.sampler = "euler_a";
  EXPECT_THROW(write_couplings(teacher, {}, couplings, dir.file("other")), ConfigError);
  couplings.generate.sampler = "ddim";
  couplings.generate.sampler_options.eta = 1.0;
  EXPECT_THROW(write_couplings(teacher, {}, couplings, dir.file("other")), ConfigError);
}

TEST(Consistency, BoundaryConditionHoldsExactly) {
  auto net = std::make_shared<AffineInTimeNet>();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) p.normal_();
  }
  Precond model(net, Prediction::flow, flow_schedule(), kSigmaMin);
  Precond plain(net, Prediction::flow, flow_schedule());
  SeededNoise noise(seed_range(0, 8), torch::kCPU);
  const auto x = noise.randn({1, 2, 2});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(model->denoise(x, torch::full({8}, kSigmaMin), {}), x));
  // Away from σ_min, f = x + r (D − x) with r = (σ − σ_min)/σ.
  const auto sigma = torch::full({8}, 0.5);
  const auto d = plain->denoise(x, sigma, {});
  const double r = (0.5 - kSigmaMin) / 0.5;
  EXPECT_LT((model->denoise(x, sigma, {}) - (x + r * (d - x))).abs().max().item<double>(), 1e-6);
  EXPECT_GT((model->denoise(x, sigma, {}) - x).abs().max().item<double>(), 1e-2);
}

TEST(Consistency, DiscretisationScheduleAndTargetDecay) {
  DistillOptions o;
  o.n_start = 2;
  o.n_end = 150;
  o.mu0 = 0.9;
  EXPECT_EQ(consistency_points_at(o, 0, 1000), 2);
  EXPECT_EQ(consistency_points_at(o, 1000, 1000), 150);
  // Song et al. 2023 App. C: N(k) = ⌈√(k/K((s1+1)² − s0²) + s0²) − 1⌉ + 1 at k = K/2.
  EXPECT_EQ(consistency_points_at(o, 500, 1000), static_cast<int>(std::ceil(std::sqrt(0.5 * (150.0 * 150 - 4) + 4) - 1) + 1));
  int previous = 0;
  for (int64_t k = 0; k <= 1000; k += 50) {
    const int n = consistency_points_at(o, k, 1000);
    EXPECT_GE(n, previous);
    previous = n;
  }
  EXPECT_DOUBLE_EQ(consistency_target_decay(o, 2), 0.9);
  EXPECT_DOUBLE_EQ(consistency_target_decay(o, 150), std::exp(2 * std::log(0.9) / 150));
  const auto flow = consistency_sigmas(flow_schedule(), 5);
  ASSERT_EQ(flow.size(), 5u);
  EXPECT_EQ(flow.front(), kSigmaMin);
  EXPECT_EQ(flow.back(), kSigmaMax);
  const double t_lo = NoiseSchedule::flow_t_from_sigma(kSigmaMin), t_hi = NoiseSchedule::flow_t_from_sigma(kSigmaMax);
  EXPECT_NEAR(NoiseSchedule::flow_t_from_sigma(flow[2]), 0.5 * (t_lo + t_hi), 1e-12);
  const auto edm = consistency_sigmas(NoiseSchedule::edm(0.002, 80.0, 0.5), 18);
  auto karras = karras_sigmas(18, 0.002, 80.0);
  EXPECT_NEAR(edm[16], karras[1], 1e-9);
}

TEST(Consistency, PseudoHuberDistance) {
  const auto a = torch::zeros({2, 1, 2, 2});
  auto b = torch::zeros({2, 1, 2, 2});
  b[1].fill_(3.0);
  const double c = 0.00054 * 2.0;  // √d with d = 4
  const auto d = consistency_distance(ConsistencyDistance::pseudo_huber, a, b);
  EXPECT_NEAR(d[0].item<double>(), 0.0, 1e-9);
  EXPECT_NEAR(d[1].item<double>(), std::sqrt(36.0 + c * c) - c, 1e-5);
  EXPECT_NEAR(consistency_distance(ConsistencyDistance::l2, a, b)[1].item<double>(), 9.0, 1e-6);
}

TEST(Consistency, DistillationFromTheExactTeacherLearnsTheOdeMap) {
  auto teacher = exact_teacher();
  auto net = std::make_shared<AffineInTimeNet>();
  Precond student(net, Prediction::flow, flow_schedule(), kSigmaMin);
  Ema target_ema(std::make_shared<AffineInTimeNet>(), 0.0, false);
  target_ema.copy_from(*net);
  Precond target(target_ema.net_ptr(), Prediction::flow, flow_schedule(), kSigmaMin);
  DistillOptions o;
  o.method = DistillMethod::consistency;
  o.solver = TeacherSolver::heun;
  o.distance = ConsistencyDistance::l2;
  o.n_start = o.n_end = 18;
  o.mu0 = 0.0;
  constexpr int kSteps = 3000;
  ConsistencyDistillation distillation(o, teacher, kSteps);
  torch::optim::Adam adam(student->parameters(), torch::optim::AdamOptions(0.02));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto gaussian = single_gaussian(kMean, kVariance);
  for (int step = 0; step < kSteps; ++step) {
    set_learning_rate(adam, step, kSteps, 0.02);
    SeededNoise noise(seed_range(static_cast<uint64_t>(step) * 256, static_cast<uint64_t>(step + 1) * 256), torch::kCPU);
    const auto x0 = sample_mixture(gaussian, noise).to(torch::kFloat32).view({-1, 1, 2, 2});
    adam.zero_grad();
    distillation.loss(student, target, x0, {}, gen, step).loss.backward();
    adam.step();
    target_ema.update(*net, torch::full({}, 1.0 - distillation.target_decay(step)));
  }
  const auto x_start = start_noise(900000, 256);
  torch::NoGradGuard no_grad;
  const auto one_step = student->denoise(x_start, torch::full({256}, kSigmaMax), {}).to(torch::kFloat64);
  const auto errors = (one_step - exact_map(x_start)).abs();
  const double error = errors.max().item<double>(), mean_error = errors.mean().item<double>();
  // The teacher's own one-step estimate E[x0 | x] is the mean, far from the ODE map.
  const double teacher_error = (one_euler_step(teacher, x_start) - exact_map(x_start)).abs().max().item<double>();
  std::printf("consistency one-step error: max %.4f, mean %.4f (teacher's one-step max %.4f)\n", error, mean_error,
              teacher_error);
  // The bootstrapped fit is weakest at small σ, where f moves the least with the network's
  // output (c_out = −t); the residual is about 4% of the data's spread s = 0.5.
  EXPECT_LT(mean_error, 0.03);
  EXPECT_LT(error, 0.1);
  EXPECT_GT(teacher_error, 0.5);
}

TEST(Consistency, SamplingCostsOneEvaluationPerStepAndRenoisesAboveTheBoundary) {
  std::vector<double> seen;
  const DenoiserFn counting = [&seen](const torch::Tensor& x, const torch::Tensor& sigma) {
    seen.push_back(sigma[0].item<double>());
    return 0.5 * x;
  };
  SeededNoise noise(seed_range(0, 4), torch::kCPU);
  const auto x = 80.0 * noise.randn({3});
  SamplerOptions options;
  options.consistency_sigma_min = 0.002;
  const auto one = sample_consistency(counting, x, {80.0, 0.0}, noise, options);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(torch::allclose(one, 0.5 * x));
  seen.clear();
  SeededNoise streams(seed_range(0, 4), torch::kCPU);
  const auto x_again = 80.0 * streams.randn({3});
  const auto three = sample_consistency(counting, x_again, {80.0, 2.0, 0.5, 0.0}, streams, options);
  EXPECT_EQ(seen, (std::vector<double>{80.0, 2.0, 0.5}));
  // Algorithm 1 by hand: x0 = f(x; 80), then x = x0 + √(σ² − σ_min²) z and x0 = f(x; σ).
  SeededNoise replay(seed_range(0, 4), torch::kCPU);
  auto x0 = 0.5 * (80.0 * replay.randn({3}));
  for (double sigma : {2.0, 0.5}) x0 = 0.5 * (x0 + std::sqrt(sigma * sigma - 0.002 * 0.002) * replay.randn({3}));
  EXPECT_TRUE(torch::allclose(three, x0, 1e-6, 1e-6));
}
