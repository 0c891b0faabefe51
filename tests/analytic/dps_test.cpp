// Diffusion Posterior Sampling (Chung et al. 2023, Algorithm 1) against exact Gaussian
// denoisers (DESIGN §3, §5): the posterior mean of a Gaussian prior under a linear operator,
// a direct VP-space implementation of Algorithm 1, per-sample step sizes, and dps_linear.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "diffuse/core/error.h"
#include "diffuse/inverse/dps.h"
#include "diffuse/inverse/measurement_noise.h"
#include "diffuse/schedule/noise_schedule.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "support/analytic_denoiser.h"
#include "support/sampler_checks.h"

using namespace diffuse;
using namespace diffuse::test;

namespace {

// A smooth image-shaped mean in [-0.5, 0.5]: μ(c, i, j) = 0.5 sin(i + 2j + c).
std::vector<double> pattern_mean(int64_t channels, int64_t size) {
  std::vector<double> mean;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < size; ++i)
      for (int64_t j = 0; j < size; ++j) mean.push_back(0.5 * std::sin(static_cast<double>(i + 2 * j + c)));
  return mean;
}

torch::Tensor as_image(const std::vector<double>& values, int64_t channels, int64_t size) {
  return torch::tensor(values, torch::kFloat64).view({1, channels, size, size});
}

// The operator as a matrix [m, d]: column j is A applied to the j-th basis image.
torch::Tensor operator_matrix(const Operator& op, int64_t channels, int64_t size) {
  const int64_t d = channels * size * size;
  const auto basis = torch::eye(d, torch::kFloat64).view({d, channels, size, size});
  return op.forward(basis).flatten(1).t().contiguous();
}

// Exact posterior mean for the prior N(μ, s² I) and y = A x + σ_y n:
// μ + s² Aᵀ (s² A Aᵀ + σ_y² I)⁻¹ (y - A μ), one row per measurement. y: [B, m], μ: [d].
torch::Tensor gaussian_posterior_mean(const torch::Tensor& a, const torch::Tensor& mean, double variance,
                                      double sigma_y, const torch::Tensor& y) {
  const int64_t m = a.size(0);
  const auto gram = variance * a.matmul(a.t()) + sigma_y * sigma_y * torch::eye(m, torch::kFloat64);
  const auto residual = y - a.matmul(mean).unsqueeze(0);                          // [B, m]
  return mean.unsqueeze(0) + variance * residual.matmul(torch::inverse(gram)).matmul(a);  // [B, d]
}

double rms(const torch::Tensor& t) { return t.pow(2).mean().sqrt().item<double>(); }

// x = σ_0 n from each sample's own stream, then DPS on the same streams.
torch::Tensor run_dps(const DenoiserFn& denoiser, const Operator& op, const torch::Tensor& y,
                      const std::vector<double>& sigmas, const std::vector<uint64_t>& seeds,
                      std::vector<int64_t> image_shape, const DpsOptions& options) {
  SeededNoise noise(seeds, torch::kCPU);
  const auto x = sigmas.front() * noise.randn(image_shape, torch::kFloat64);
  return sample_dps(denoiser, op, y, x, sigmas, noise, options);
}

// Algorithm 1 of Chung et al. 2023 written directly in VP space, x_i = √ᾱ_i x̃_i:
//   x̂0 = D(x_i / √ᾱ_i; σ_i)
//   x'_{i-1} = √ᾱ_{i-1} β_i / (1 - ᾱ_i) x̂0 + √α_i (1 - ᾱ_{i-1}) / (1 - ᾱ_i) x_i + σ̃_i z
//     (Ho et al. 2020 eq. 6-7 with α_i = ᾱ_i / ᾱ_{i-1}, β_i = 1 - α_i on the strided grid,
//      σ̃_i² = β̃_i = (1 - ᾱ_{i-1}) / (1 - ᾱ_i) β_i)
//   x_{i-1} = x'_{i-1} - ζ_i ∇_{x_i} ‖y - A(x̂0)‖²,  ζ_i = ζ or ζ' / ‖y - A(x̂0)‖ per sample.
// Returns x̃ at σ = 0 (ᾱ = 1, so x_0 itself).
torch::Tensor vp_space_dps(const DenoiserFn& denoiser, const Operator& op, const torch::Tensor& y,
                           const torch::Tensor& x_tilde_start, const std::vector<double>& sigmas,
                           SeededNoise& noise, double zeta, bool normalize) {
  const auto alpha_bar = [](double sigma) { return 1.0 / (1.0 + sigma * sigma); };
  auto x = x_tilde_start * std::sqrt(alpha_bar(sigmas.front()));
  for (size_t i = 0; i + 1 < sigmas.size(); ++i) {
    const double ab = alpha_bar(sigmas[i]), ab_prev = alpha_bar(sigmas[i + 1]);
    auto x_in = x.detach().requires_grad_(true);
    const auto denoised = denoiser(x_in / std::sqrt(ab), torch::full({x.size(0)}, sigmas[i], torch::kFloat64));
    const auto squared = (y - op.forward(denoised)).pow(2).flatten(1).sum(1);
    const auto grad = torch::autograd::grad({squared.sum()}, {x_in})[0];

    const double alpha = ab / ab_prev, beta = 1.0 - alpha;
    auto x_prime = (std::sqrt(ab_prev) * beta / (1.0 - ab)) * denoised.detach() +
                   (std::sqrt(alpha) * (1.0 - ab_prev) / (1.0 - ab)) * x.detach();
    if (sigmas[i + 1] > 0.0) {
      const double posterior_variance = (1.0 - ab_prev) / (1.0 - ab) * beta;
      x_prime = x_prime + std::sqrt(posterior_variance) * noise.randn_like(x);
    }
    auto zeta_i = torch::full({x.size(0)}, zeta, torch::kFloat64);
    if (normalize) zeta_i = zeta_i / squared.detach().sqrt();
    x = x_prime - zeta_i.view({-1, 1, 1, 1}) * grad;
  }
  return x;
}

// A non-linear measurement, to check that dps_linear refuses it.
class SquareOperator : public Operator {
 public:
  std::string name() const override { return "square"; }
  torch::Tensor forward(const torch::Tensor& x) const override { return x * x; }
  std::vector<int64_t> measurement_shape() const override { return {1, 4, 4}; }
};

}  // namespace

TEST(Dps, GaussianPriorLandsOnTheExactPosteriorMean) {
  // Prior N(μ, s² I) on 1×8×8 images; for each operator, DPS's sample mean over many seeds
  // is compared with the closed-form posterior mean, and with the naive estimate.
  constexpr int64_t kSize = 8;
  constexpr double kVariance = 0.25, kSigmaY = 0.05;
  constexpr int64_t kSamples = 256;
  const auto mean_values = pattern_mean(1, kSize);
  const auto mean = torch::tensor(mean_values, torch::kFloat64);
  const auto denoiser = mixture_denoiser(single_gaussian(mean_values, kVariance));
  const auto sigmas = vp_sigmas(NoiseSchedule::vp_linear(1000, 1e-4, 0.02), 200, TimestepSpacing::leading);

  // One ground-truth image, measured once: every DPS sample restores the same y.
  SeededNoise truth_noise(std::vector<uint64_t>{1000}, torch::kCPU);
  const auto x_true = as_image(mean_values, 1, kSize) + std::sqrt(kVariance) * truth_noise.randn({1, kSize, kSize}, torch::kFloat64);

  OperatorOptions inpaint;
  inpaint.name = "inpaint_random";
  inpaint.keep_fraction = 0.5;
  inpaint.seed = 2;
  OperatorOptions sr;
  sr.name = "super_resolution";
  sr.factor = 2;
  for (const auto& options : {inpaint, sr}) {
    SCOPED_TRACE(options.name);
    const auto op = make_operator(options, 1, kSize);
    MeasurementNoiseOptions noise_options;
    noise_options.sigma = kSigmaY;
    SeededNoise y_noise(std::vector<uint64_t>{2000}, torch::kCPU);
    const auto y = add_measurement_noise(op->forward(x_true), noise_options, y_noise);  // [1, m...]

    const auto a = operator_matrix(*op, 1, kSize);
    const auto exact = gaussian_posterior_mean(a, mean, kVariance, kSigmaY, y.flatten(1)).view({1, 1, kSize, kSize});
    // Naive: the measurement itself for inpainting (holes at 0), nearest upsampling for SR.
    const auto naive = options.name == "super_resolution"
                           ? op->adjoint(y) * static_cast<double>(sr.factor * sr.factor)
                           : y;

    DpsOptions dps;
    dps.zeta = 0.5;
    const auto y_batch = y.expand({kSamples, y.size(1), y.size(2), y.size(3)}).contiguous();
    const auto restored = run_dps(denoiser, *op, y_batch, sigmas, seed_range(0, kSamples), {1, kSize, kSize}, dps);
    const auto dps_mean = restored.mean(0, true);

    const double dps_error = rms(dps_mean - exact), naive_error = rms(naive - exact);
    const double prior_error = rms(as_image(mean_values, 1, kSize) - exact);
    std::printf("%s: rms(DPS mean - posterior mean) %.4f, naive %.4f, prior mean %.4f\n",
                options.name.c_str(), dps_error, naive_error, prior_error);
    // The sample mean of 256 draws has a standard error of about s / 16 ≈ 0.03 per pixel
    // where the measurement leaves the prior free (unobserved pixels, SR's null space).
    EXPECT_LT(dps_error, 0.08);
    EXPECT_LT(dps_error, 0.35 * naive_error);
    EXPECT_LT(dps_error, 0.35 * prior_error);
    // Each sample is consistent with the measurement to about the noise level.
    const double data_fit = rms(op->forward(restored) - y_batch);
    EXPECT_LT(data_fit, 3 * kSigmaY);
  }
}

TEST(Dps, SigmaSpaceEqualsADirectVpSpaceImplementation) {
  // A two-component mixture makes x̂0's Jacobian depend on x, so the gradient through the
  // denoiser is exercised for real.
  const GaussianMixture mixture{{0.6, 0.4}, {pattern_mean(1, 4), std::vector<double>(16, -0.3)}, {0.1, 0.2}};
  const auto denoiser = mixture_denoiser(mixture);
  const auto sigmas = vp_sigmas(NoiseSchedule::vp_linear(1000, 1e-4, 0.02), 50, TimestepSpacing::leading);
  OperatorOptions options;
  options.name = "super_resolution";
  const auto op = make_operator(options, 1, 4);
  SeededNoise y_noise(std::vector<uint64_t>{7, 8, 9}, torch::kCPU);
  const auto y = 0.5 * y_noise.randn({1, 2, 2}, torch::kFloat64);

  for (const bool normalize : {true, false}) {
    SCOPED_TRACE(normalize ? "normalised zeta" : "constant zeta");
    DpsOptions dps;
    dps.normalize_zeta = normalize;
    dps.zeta = normalize ? 0.7 : 0.3;
    const std::vector<uint64_t> seeds{3, 4, 5};
    const auto ours = run_dps(denoiser, *op, y, sigmas, seeds, {1, 4, 4}, dps);

    SeededNoise noise(seeds, torch::kCPU);
    const auto x_start = sigmas.front() * noise.randn({1, 4, 4}, torch::kFloat64);
    const auto reference = vp_space_dps(denoiser, *op, y, x_start, sigmas, noise, dps.zeta, normalize);
    const double difference = (ours - reference).abs().max().item<double>();
    EXPECT_LT(difference, 1e-10 * std::max(1.0, reference.abs().max().item<double>()));

    // The guidance matters: without it (ζ → 0) the result is far from both.
    DpsOptions off = dps;
    off.zeta = 0.0;
    const auto unguided = run_dps(denoiser, *op, y, sigmas, seeds, {1, 4, 4}, off);
    EXPECT_GT((unguided - reference).abs().max().item<double>(), 1e-3);
  }
}

TEST(Dps, StepSizesArePerSample) {
  // Sample 0 of a batch of two equals the same seed alone, although sample 1's residual (and
  // so its normalised step) is very different.
  const auto mean_values = pattern_mean(1, 4);
  const auto denoiser = mixture_denoiser(single_gaussian(mean_values, 0.3));
  const auto sigmas = vp_sigmas(NoiseSchedule::vp_linear(1000, 1e-4, 0.02), 20, TimestepSpacing::leading);
  OperatorOptions options;
  options.name = "inpaint_box";
  options.box_size = 2;
  const auto op = make_operator(options, 1, 4);
  SeededNoise y_noise(std::vector<uint64_t>{1, 2}, torch::kCPU);
  auto y = op->forward(y_noise.randn({1, 4, 4}, torch::kFloat64));
  y[1].mul_(20.0);

  for (const auto method : {DpsMethod::dps, DpsMethod::dps_linear}) {
    DpsOptions dps;
    dps.method = method;
    const auto pair = run_dps(denoiser, *op, y, sigmas, {11, 12}, {1, 4, 4}, dps);
    const auto alone = run_dps(denoiser, *op, y.slice(0, 0, 1), sigmas, {11}, {1, 4, 4}, dps);
    EXPECT_LT((pair[0] - alone[0]).abs().max().item<double>(), 1e-12);
    EXPECT_FALSE(pair.requires_grad());
  }
}

TEST(Dps, LinearMethodNeedsALinearOperator) {
  const SquareOperator op;
  const auto denoiser = mixture_denoiser(single_gaussian(std::vector<double>(16, 0.0), 1.0));
  const std::vector<double> sigmas{2.0, 1.0, 0.0};
  const auto y = torch::full({1, 1, 4, 4}, 0.25, torch::kFloat64);
  DpsOptions dps;
  dps.method = DpsMethod::dps_linear;
  try {
    run_dps(denoiser, op, y, sigmas, {0}, {1, 4, 4}, dps);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("square"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("dps_linear"), std::string::npos) << e.what();
  }
  // Full DPS differentiates through any operator.
  dps.method = DpsMethod::dps;
  const auto x = run_dps(denoiser, op, y, sigmas, {0}, {1, 4, 4}, dps);
  EXPECT_TRUE(torch::isfinite(x).all().item<bool>());
}

TEST(Dps, ClipKeepsTheEstimateInTheImageRange) {
  // Data N(1.2, 0.3²): most pixels lie above 1. Without guidance the last step lands on x̂0,
  // so with clip_denoised 1 every output pixel is in [-1, 1]; without the clamp most are
  // not. With guidance the final correction may step past the bound, but starts from there.
  const auto denoiser = mixture_denoiser(single_gaussian(std::vector<double>(16, 1.2), 0.09));
  const auto sigmas = vp_sigmas(NoiseSchedule::vp_linear(1000, 1e-4, 0.02), 20, TimestepSpacing::leading);
  OperatorOptions options;
  options.name = "inpaint_box";
  options.box_size = 2;
  const auto op = make_operator(options, 1, 4);
  const auto y = op->forward(torch::full({2, 1, 4, 4}, 1.2, torch::kFloat64));
  for (const auto method : {DpsMethod::dps, DpsMethod::dps_linear}) {
    for (const double zeta : {0.0, 0.5}) {
      DpsOptions dps;
      dps.method = method;
      dps.zeta = zeta;
      const auto free = run_dps(denoiser, *op, y, sigmas, {1, 2}, {1, 4, 4}, dps);
      dps.clip_denoised = 1.0;
      const auto clipped = run_dps(denoiser, *op, y, sigmas, {1, 2}, {1, 4, 4}, dps);
      EXPECT_GT((free > 1.0).to(torch::kFloat64).mean().item<double>(), 0.5);
      EXPECT_TRUE(torch::isfinite(clipped).all().item<bool>());
      if (zeta == 0.0)
        EXPECT_LE(clipped.abs().max().item<double>(), 1.0);
      else
        EXPECT_LT(clipped.mean().item<double>(), free.mean().item<double>());
    }
  }
  DpsOptions negative;
  negative.clip_denoised = -1.0;
  EXPECT_THROW(run_dps(denoiser, *op, y, sigmas, {1, 2}, {1, 4, 4}, negative), ConfigError);
}

TEST(Dps, FullStepIsCTimesTheLinearStepForAJacobianOfCTimesIdentity) {
  // For N(μ, s² I) data, D(x; σ) = μ + c (x - μ) with c = s² / (s² + σ²), so ∂x̂0/∂x = c I and
  // the full DPS correction is exactly c times the Jacobian-free one (dps.h). One step into
  // σ = 0 has no fresh noise, so the ancestral part is x̂0 for both methods.
  const double variance = 0.5, sigma = 1.5;
  const double c = variance / (variance + sigma * sigma);
  const auto mean_values = pattern_mean(1, 4);
  const auto denoiser = mixture_denoiser(single_gaussian(mean_values, variance));
  const std::vector<double> sigmas{sigma, 0.0};
  OperatorOptions options;
  options.name = "gaussian_blur";
  options.kernel_size = 3;
  options.blur_sigma = 1.0;
  const auto op = make_operator(options, 1, 4);
  SeededNoise y_noise(std::vector<uint64_t>{5, 6}, torch::kCPU);
  const auto y = y_noise.randn({1, 4, 4}, torch::kFloat64);

  for (const bool normalize : {true, false}) {
    DpsOptions dps;
    dps.normalize_zeta = normalize;
    dps.zeta = 0.4;
    DpsOptions none = dps;
    none.zeta = 0.0;
    const auto base = run_dps(denoiser, *op, y, sigmas, {1, 2}, {1, 4, 4}, none);
    const auto full = run_dps(denoiser, *op, y, sigmas, {1, 2}, {1, 4, 4}, dps);
    dps.method = DpsMethod::dps_linear;
    const auto linear = run_dps(denoiser, *op, y, sigmas, {1, 2}, {1, 4, 4}, dps);
    const auto full_step = full - base, linear_step = linear - base;
    EXPECT_GT(linear_step.abs().max().item<double>(), 1e-3);
    EXPECT_LT((full_step - c * linear_step).abs().max().item<double>(), 1e-12);
  }
}

TEST(Dps, BadInputsAreRejected) {
  const auto denoiser = mixture_denoiser(single_gaussian(std::vector<double>(16, 0.0), 1.0));
  OperatorOptions options;
  options.name = "super_resolution";
  const auto op = make_operator(options, 1, 4);
  SeededNoise noise(std::vector<uint64_t>{0}, torch::kCPU);
  const auto x = noise.randn({1, 4, 4}, torch::kFloat64);
  DpsOptions dps;
  // A measurement of the wrong shape names both shapes.
  try {
    sample_dps(denoiser, *op, torch::zeros({1, 1, 4, 4}, torch::kFloat64), x, {1.0, 0.0}, noise, dps);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 1, 2, 2]"), std::string::npos) << e.what();
  }
  // σ must decrease and end in 0.
  EXPECT_THROW(sample_dps(denoiser, *op, torch::zeros({1, 1, 2, 2}, torch::kFloat64), x, {1.0, 2.0, 0.0}, noise, dps),
               ConfigError);
  EXPECT_THROW(sample_dps(denoiser, *op, torch::zeros({1, 1, 2, 2}, torch::kFloat64), x, {2.0, 1.0}, noise, dps),
               ConfigError);
  dps.zeta = -1.0;
  EXPECT_THROW(sample_dps(denoiser, *op, torch::zeros({1, 1, 2, 2}, torch::kFloat64), x, {1.0, 0.0}, noise, dps),
               ConfigError);
}
