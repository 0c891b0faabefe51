// Measurement operators (DESIGN §3, §5): exact adjoints ⟨Ax, y⟩ = ⟨x, Aᵀy⟩ in float64,
// autograd gradients against central finite differences, the name table, option checks,
// seeded masks and kernels, and measurement noise drawn per sample.
#include "diffuse/inverse/operator.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/inverse/measurement_noise.h"
#include "inverse/concrete_operators.h"
#include "support/expect_text.h"

using namespace diffuse;

namespace {

constexpr int64_t kChannels = 3;
constexpr int64_t kSize = 12;

struct Case {
  const char* label;
  OperatorOptions options;
};

// Every registered operator, with options that exercise its awkward paths: an off-centre
// box, a blur kernel wide enough that the reflect padding folds over most of the image.
std::vector<Case> operator_cases() {
  std::vector<Case> cases;
  OperatorOptions o;
  o.name = "inpaint_box";
  o.box_size = 5;
  o.box_top = 1;
  o.box_left = 6;
  cases.push_back({"inpaint_box", o});
  o = OperatorOptions{};
  o.name = "inpaint_random";
  o.keep_fraction = 0.4;
  o.seed = 3;
  cases.push_back({"inpaint_random", o});
  o = OperatorOptions{};
  o.name = "gaussian_blur";
  o.kernel_size = 15;
  o.blur_sigma = 2.5;
  cases.push_back({"gaussian_blur", o});
  o = OperatorOptions{};
  o.name = "motion_blur";
  o.kernel_size = 9;
  o.intensity = 0.7;
  o.seed = 11;
  cases.push_back({"motion_blur", o});
  o = OperatorOptions{};
  o.name = "super_resolution";
  o.factor = 2;
  cases.push_back({"super_resolution_x2", o});
  o.factor = 4;
  cases.push_back({"super_resolution_x4", o});
  o = OperatorOptions{};
  o.name = "denoise";
  cases.push_back({"denoise", o});
  return cases;
}

torch::Tensor draw(std::vector<int64_t> shape, uint64_t seed) {
  SeededNoise noise(std::vector<uint64_t>{seed, seed + 1}, torch::kCPU);
  return noise.randn(shape, torch::kFloat64);  // [2, shape...]
}

std::vector<int64_t> image_shape() { return {kChannels, kSize, kSize}; }

double inner_product(const torch::Tensor& a, const torch::Tensor& b) { return (a * b).sum().item<double>(); }

}  // namespace

TEST(Operator, EveryLinearOperatorPassesTheAdjointTest) {
  for (const auto& c : operator_cases()) {
    SCOPED_TRACE(c.label);
    const auto op = make_operator(c.options, kChannels, kSize);
    ASSERT_TRUE(op->is_linear());
    const auto x = draw(image_shape(), 1);
    const auto y = draw(op->measurement_shape(), 7);
    const double lhs = inner_product(op->forward(x), y);
    const double rhs = inner_product(x, op->adjoint(y));
    EXPECT_NEAR(lhs, rhs, 1e-10 * std::max(1.0, std::abs(lhs)));
    // The adjoint really is the transpose, not just any map with a matching inner product
    // on one pair: check a second, independent pair as well.
    const auto x2 = draw(image_shape(), 21);
    const auto y2 = draw(op->measurement_shape(), 33);
    EXPECT_NEAR(inner_product(op->forward(x2), y2), inner_product(x2, op->adjoint(y2)), 1e-10 * std::max(1.0, std::abs(lhs)));
  }
}

TEST(Operator, MeasurementShapesFitTheOperator) {
  for (const auto& c : operator_cases()) {
    SCOPED_TRACE(c.label);
    const auto op = make_operator(c.options, kChannels, kSize);
    auto expected = op->measurement_shape();
    expected.insert(expected.begin(), 2);
    EXPECT_EQ(op->forward(draw(image_shape(), 1)).sizes().vec(), expected);
  }
  OperatorOptions sr;
  sr.name = "super_resolution";
  sr.factor = 4;
  EXPECT_EQ(make_operator(sr, kChannels, kSize)->measurement_shape(), (std::vector<int64_t>{3, 3, 3}));
}

TEST(Operator, AutogradGradientMatchesFiniteDifferences) {
  // f(x) = Σ sin(A x) ⊙ w is non-linear in x, so its gradient Aᵀ(cos(A x) ⊙ w) is not a
  // constant; compare it with central differences along random directions.
  for (const auto& c : operator_cases()) {
    SCOPED_TRACE(c.label);
    const auto op = make_operator(c.options, kChannels, kSize);
    const auto x = draw(image_shape(), 2);
    const auto w = draw(op->measurement_shape(), 5);
    const auto f = [&](const torch::Tensor& input) { return (op->forward(input).sin() * w).sum(); };

    auto x_in = x.clone().requires_grad_(true);
    const auto grad = torch::autograd::grad({f(x_in)}, {x_in})[0];
    // The gradient is also Aᵀ(cos(A x) ⊙ w): autograd and the hand-written adjoint agree.
    const auto via_adjoint = op->adjoint(op->forward(x).cos() * w);
    EXPECT_LT((grad - via_adjoint).abs().max().item<double>(), 1e-12);

    const double eps = 1e-5;
    for (uint64_t k = 0; k < 3; ++k) {
      const auto v = draw(image_shape(), 100 + k);
      const double fd = (f(x + eps * v).item<double>() - f(x - eps * v).item<double>()) / (2 * eps);
      const double analytic = inner_product(grad, v);
      EXPECT_NEAR(fd, analytic, 1e-7 * std::max(1.0, std::abs(analytic)));
    }
  }
}

TEST(Operator, WorksInFloat32) {
  for (const auto& c : operator_cases()) {
    SCOPED_TRACE(c.label);
    const auto op = make_operator(c.options, kChannels, kSize);
    const auto x = draw(image_shape(), 1);
    const auto y32 = op->forward(x.to(torch::kFloat32));
    EXPECT_EQ(y32.scalar_type(), torch::kFloat32);
    EXPECT_LT((y32.to(torch::kFloat64) - op->forward(x)).abs().max().item<double>(), 1e-5);
  }
}

TEST(Operator, UnknownNameListsTheValidOnes) {
  OperatorOptions o;
  o.name = "inpaint_boxx";
  try {
    make_operator(o, 1, 8);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("inpaint_boxx"), std::string::npos) << message;
    for (const auto& entry : operator_table())
      EXPECT_NE(message.find(entry.name), std::string::npos) << message;
  }
  EXPECT_EQ(operator_names(),
            "inpaint_box, inpaint_random, gaussian_blur, motion_blur, super_resolution, denoise");
}

TEST(Operator, BadOptionValuesNameTheKey) {
  const auto expect_key = [](OperatorOptions o, int64_t size, const std::string& key) {
    try {
      make_operator(o, 1, size);
      ADD_FAILURE() << "expected ConfigError for " << key;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("operator." + key), std::string::npos) << e.what();
    }
  };
  OperatorOptions o;
  o.name = "gaussian_blur";
  o.kernel_size = 8;
  expect_key(o, 12, "kernel_size");
  o.kernel_size = 31;  // wider than the reflect padding of a 12-pixel image allows
  expect_key(o, 12, "kernel_size");
  o.kernel_size = 5;
  o.blur_sigma = 0.0;
  expect_key(o, 12, "blur_sigma");
  o = OperatorOptions{};
  o.name = "motion_blur";
  o.intensity = 1.5;
  expect_key(o, 12, "intensity");
  o = OperatorOptions{};
  o.name = "super_resolution";
  o.factor = 3;
  expect_key(o, 12, "factor");
  o.factor = 4;
  expect_key(o, 14, "factor");  // 4 does not divide 14
  o = OperatorOptions{};
  o.name = "inpaint_random";
  o.keep_fraction = 0.0;
  expect_key(o, 12, "keep_fraction");
  o = OperatorOptions{};
  o.name = "inpaint_box";
  o.box_size = 13;
  expect_key(o, 12, "box_size");
  o.box_size = 4;
  o.box_top = 9;
  expect_key(o, 12, "box_top");
  o.box_top = 0;
  o.box_left = 10;
  expect_key(o, 12, "box_left");
}

// The box's size and corners are pixel positions: the schema bounds them by the largest image
// side, whatever the image at hand (the image-size checks come after).
TEST(Operator, BoxKeysAreBoundedByTheLargestImageSide) {
  const auto message = [](OperatorOptions o) {
    o.name = "inpaint_box";
    return test::error_message<ConfigError>([&] { make_operator(o, 1, 8); });
  };
  OperatorOptions o;
  o.box_size = 4097;
  EXPECT_CONTAINS(message(o), "operator.box_size: must be an integer in [1, 4096], found 4097");
  o = OperatorOptions{};
  o.box_top = 4097;
  EXPECT_CONTAINS(message(o),
                  "operator.box_top: must lie in [0, 4096], or be -1 to centre the box");
  o = OperatorOptions{};
  o.box_left = -2;
  EXPECT_CONTAINS(message(o),
                  "operator.box_left: must lie in [0, 4096], or be -1 to centre the box");
}

TEST(Operator, WrongInputShapeIsADataErrorWithBothShapes) {
  OperatorOptions o;
  o.name = "super_resolution";
  const auto op = make_operator(o, 1, 8);
  try {
    op->forward(torch::zeros({2, 3, 8, 8}));
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("[B, 1, 8, 8]"), std::string::npos) << message;
    EXPECT_NE(message.find("[2, 3, 8, 8]"), std::string::npos) << message;
  }
}

TEST(Operator, BoxMaskIsCentredByDefaultAndSeededWhenRandom) {
  OperatorOptions o;
  o.name = "inpaint_box";
  o.box_size = 4;
  const auto centred = make_operator(o, 1, 10);
  const auto& mask = dynamic_cast<const MaskOperator&>(*centred).mask();
  EXPECT_EQ(mask.sum().item<double>(), 100 - 16);
  using torch::indexing::Slice;
  EXPECT_EQ(mask.index({0, 0, Slice(3, 7), Slice(3, 7)}).sum().item<double>(), 0.0);

  o.random_box = true;
  std::vector<torch::Tensor> masks;
  for (uint64_t seed : std::vector<uint64_t>{0, 0, 1, 2, 3}) {
    o.seed = seed;
    const auto op = make_operator(o, 1, 10);
    masks.push_back(dynamic_cast<const MaskOperator&>(*op).mask());
    EXPECT_EQ(masks.back().sum().item<double>(), 100 - 16);
  }
  EXPECT_TRUE(masks[0].equal(masks[1]));
  int distinct = 0;
  for (size_t k = 2; k < masks.size(); ++k) distinct += !masks[k].equal(masks[0]);
  EXPECT_GE(distinct, 2);
}

TEST(Operator, RandomMaskKeepsTheExactFractionAndDependsOnTheSeed) {
  const auto a = random_pixel_mask(10, 0.3, 4);
  EXPECT_EQ(a.sum().item<double>(), 30.0);
  EXPECT_TRUE(a.equal(random_pixel_mask(10, 0.3, 4)));
  EXPECT_FALSE(a.equal(random_pixel_mask(10, 0.3, 5)));
  EXPECT_EQ(random_pixel_mask(10, 1.0, 4).sum().item<double>(), 100.0);
}

TEST(Operator, MotionKernelIsADeterministicFunctionOfItsSeed) {
  const auto k = motion_kernel(15, 0.5, 9);
  EXPECT_EQ(k.sizes().vec(), (std::vector<int64_t>{15, 15}));
  EXPECT_NEAR(k.sum().item<double>(), 1.0, 1e-12);
  EXPECT_GE(k.min().item<double>(), 0.0);
  EXPECT_TRUE(k.equal(motion_kernel(15, 0.5, 9)));
  EXPECT_FALSE(k.equal(motion_kernel(15, 0.5, 10)));
  // A streak, not a blob and not a point: it spreads over more than a few pixels but leaves
  // most of the k × k square empty.
  const auto support = (k > 1e-9).sum().item<int64_t>();
  EXPECT_GT(support, 15);
  EXPECT_LT(support, 15 * 15 / 2);

  // The operator built from the options uses exactly this kernel, for measuring and
  // guiding alike (one object).
  OperatorOptions o;
  o.name = "motion_blur";
  o.kernel_size = 15;
  o.intensity = 0.5;
  o.seed = 9;
  const auto op = make_operator(o, 1, 16);
  EXPECT_TRUE(dynamic_cast<const ConvolutionOperator&>(*op).kernel().equal(k));
}

TEST(Operator, GaussianKernelIsNormalisedAndSymmetric) {
  const auto k = gaussian_kernel(9, 2.0);
  EXPECT_NEAR(k.sum().item<double>(), 1.0, 1e-12);
  EXPECT_TRUE(k.allclose(k.t()));
  EXPECT_TRUE(k.allclose(k.flip({0})));
  EXPECT_NEAR(k[4][4].item<double>() / k[4][6].item<double>(), std::exp(4.0 / 8.0), 1e-12);
}

TEST(Operator, BlurKeepsAConstantImageAndSuperResolutionAverages) {
  OperatorOptions o;
  o.name = "motion_blur";
  o.kernel_size = 7;
  const auto blur = make_operator(o, 1, 8);
  const auto flat = torch::full({1, 1, 8, 8}, 0.25, torch::kFloat64);
  EXPECT_LT((blur->forward(flat) - 0.25).abs().max().item<double>(), 1e-12);

  o = OperatorOptions{};
  o.name = "super_resolution";
  const auto sr = make_operator(o, 1, 4);
  const auto x = torch::arange(16, torch::kFloat64).view({1, 1, 4, 4});
  const auto y = sr->forward(x);
  EXPECT_DOUBLE_EQ(y[0][0][0][0].item<double>(), (0 + 1 + 4 + 5) / 4.0);
  EXPECT_DOUBLE_EQ(y[0][0][1][1].item<double>(), (10 + 11 + 14 + 15) / 4.0);
}

TEST(Operator, GaussianMeasurementNoiseIsPerSample) {
  const auto clean = torch::zeros({2, 1, 16, 16}, torch::kFloat64);
  MeasurementNoiseOptions o;
  o.sigma = 0.1;
  SeededNoise both(std::vector<uint64_t>{4, 8}, torch::kCPU);
  SeededNoise second(std::vector<uint64_t>{8}, torch::kCPU);
  const auto y = add_measurement_noise(clean, o, both);
  const auto y1 = add_measurement_noise(clean.slice(0, 1, 2), o, second);
  EXPECT_TRUE(y[1].equal(y1[0]));
  EXPECT_NEAR(y.std().item<double>(), 0.1, 0.02);
  EXPECT_FALSE(y[0].equal(y[1]));
}

TEST(Operator, PoissonMeasurementNoiseIsUnbiasedAndScalesWithTheRate) {
  // Mid-grey x = 0 → λ/2 expected counts; y = 2 counts / λ - 1 has mean 0 and variance 2/λ.
  const auto clean = torch::zeros({1, 1, 64, 64}, torch::kFloat64);
  MeasurementNoiseOptions o;
  o.type = MeasurementNoiseType::poisson;
  o.rate = 50.0;
  SeededNoise noise(std::vector<uint64_t>{1}, torch::kCPU);
  const auto y = add_measurement_noise(clean, o, noise);
  EXPECT_NEAR(y.mean().item<double>(), 0.0, 4 * std::sqrt(2.0 / 50.0 / 4096));
  EXPECT_NEAR(y.var().item<double>(), 2.0 / 50.0, 0.2 * 2.0 / 50.0);
  // Counts are integers: every value sits on the grid 2k/λ - 1.
  const auto k = (y + 1.0) * 25.0;
  EXPECT_LT((k - k.round()).abs().max().item<double>(), 1e-9);
}
