// FD, KID and precision/recall against closed forms and hand-computed cases.
#include "diffuse/eval/generative_metrics.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "diffuse/core/error.h"

using namespace diffuse;

namespace {

torch::Tensor gaussian_rows(int64_t n, const std::vector<double>& mean, const std::vector<double>& stddev, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto z = torch::randn({n, static_cast<int64_t>(mean.size())}, gen, torch::kFloat64);
  return z * torch::tensor(stddev, torch::kFloat64) + torch::tensor(mean, torch::kFloat64);
}

// A random orthogonal matrix (QR of a Gaussian matrix).
torch::Tensor random_rotation(int64_t d, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return std::get<0>(torch::linalg_qr(torch::randn({d, d}, gen, torch::kFloat64)));
}

}  // namespace

TEST(FrechetDistance, OfASetWithItselfIsZero) {
  const auto x = gaussian_rows(400, {0.5, -1.0, 2.0, 0.0, 3.0}, {1.0, 0.1, 2.0, 0.5, 1.5}, 1);
  const auto m = feature_moments(x);
  EXPECT_NEAR(frechet_distance(m, m), 0.0, 1e-9);
}

TEST(FrechetDistance, CommutingCovariancesMatchTheClosedForm) {
  // C1 = Q diag(a) Qᵀ and C2 = Q diag(b) Qᵀ commute, so tr (C1^½ C2 C1^½)^½ = Σ √(a b) and
  // FD = ||μ1 - μ2||² + Σ (√a - √b)².
  const int64_t d = 6;
  const auto q = random_rotation(d, 7);
  const auto a = torch::tensor({4.0, 1.0, 0.25, 9.0, 2.0, 0.5}, torch::kFloat64);
  const auto b = torch::tensor({1.0, 1.0, 1.0, 4.0, 0.1, 3.0}, torch::kFloat64);
  GaussianMoments m1{torch::tensor({1.0, 0.0, -1.0, 2.0, 0.0, 0.5}, torch::kFloat64), q.matmul(torch::diag(a)).matmul(q.t())};
  GaussianMoments m2{torch::tensor({0.0, 0.0, 1.0, 2.0, 1.0, 0.5}, torch::kFloat64), q.matmul(torch::diag(b)).matmul(q.t())};
  const double expected = (m1.mean - m2.mean).square().sum().item<double>() + (a.sqrt() - b.sqrt()).square().sum().item<double>();
  EXPECT_NEAR(frechet_distance(m1, m2), expected, 1e-9 * expected);
  EXPECT_NEAR(frechet_distance(m2, m1), expected, 1e-9 * expected);
}

TEST(FrechetDistance, NonCommutingCovariancesMatchTheTwoByTwoFormula) {
  // For 2 × 2 matrices tr √M = √(tr M + 2 √det M) (M = C1^½ C2 C1^½ has det C1 det C2 and
  // trace tr (C1 C2)), a closed form that needs no commuting.
  GaussianMoments m1{torch::zeros({2}, torch::kFloat64), torch::tensor({{2.0, 0.7}, {0.7, 1.0}}, torch::kFloat64)};
  GaussianMoments m2{torch::tensor({1.0, -1.0}, torch::kFloat64), torch::tensor({{1.0, -0.3}, {-0.3, 3.0}}, torch::kFloat64)};
  const double tr_prod = m1.cov.matmul(m2.cov).trace().item<double>();
  const double det = m1.cov.det().item<double>() * m2.cov.det().item<double>();
  const double expected = 2.0 + 3.0 + 4.0 - 2.0 * std::sqrt(tr_prod + 2.0 * std::sqrt(det));
  EXPECT_NEAR(frechet_distance(m1, m2), expected, 1e-12);
}

TEST(FrechetDistance, SampledDiagonalGaussiansAgreeWithTheClosedFormWithinSamplingError) {
  const std::vector<double> mu1{0.0, 1.0, -2.0, 0.5}, s1{1.0, 2.0, 0.5, 1.0};
  const std::vector<double> mu2{0.5, 1.0, -1.0, 0.5}, s2{1.5, 1.0, 0.5, 3.0};
  double expected = 0.0;
  for (size_t i = 0; i < mu1.size(); ++i)
    expected += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (s1[i] - s2[i]) * (s1[i] - s2[i]);  // 6.5
  const auto x = gaussian_rows(20000, mu1, s1, 11), y = gaussian_rows(20000, mu2, s2, 12);
  // Standard error of the estimate at 20000 samples is about 0.03 here.
  EXPECT_NEAR(frechet_distance(feature_moments(x), feature_moments(y)), expected, 0.15);
}

TEST(FrechetDistance, DifferentDimensionsAreRefused) {
  const auto a = feature_moments(gaussian_rows(10, {0, 0}, {1, 1}, 1));
  const auto b = feature_moments(gaussian_rows(10, {0, 0, 0}, {1, 1, 1}, 2));
  EXPECT_THROW(frechet_distance(a, b), Error);
}

TEST(KernelInceptionDistance, MatchesTheUnbiasedEstimatorOnAWholeSet) {
  // One subset of every row: a permutation of each set, which the estimator does not see.
  const auto x = torch::tensor({{1.0, 0.0}, {0.0, 2.0}, {1.0, 1.0}}, torch::kFloat64);
  const auto y = torch::tensor({{0.5, 0.5}, {2.0, 0.0}, {-1.0, 1.0}}, torch::kFloat64);
  const auto k = [](const torch::Tensor& a, const torch::Tensor& b) {
    return std::pow(a.dot(b).item<double>() / 2.0 + 1.0, 3);
  };
  double kxx = 0, kyy = 0, kxy = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      if (i != j) kxx += k(x[i], x[j]), kyy += k(y[i], y[j]);
      kxy += k(x[i], y[j]);
    }
  const double expected = (kxx + kyy) / 6.0 - 2.0 * kxy / 9.0;
  const KidResult kid = kernel_inception_distance(x, y, 1, 3, 0);
  EXPECT_NEAR(kid.mean, expected, 1e-12);
  EXPECT_EQ(kid.subset_size, 3);
}

TEST(KernelInceptionDistance, IsNearZeroForOneDistributionAndPositiveForShiftedOnes) {
  const auto x = gaussian_rows(2000, {0, 0, 0, 0}, {1, 1, 1, 1}, 3);
  const auto same = gaussian_rows(2000, {0, 0, 0, 0}, {1, 1, 1, 1}, 4);
  const auto shifted = gaussian_rows(2000, {1, 0, 0, 0}, {1, 1, 1, 1}, 5);
  const KidResult k0 = kernel_inception_distance(x, same, 50, 500, 0);
  const KidResult k1 = kernel_inception_distance(x, shifted, 50, 500, 0);
  EXPECT_LT(std::abs(k0.mean), 4.0 * k0.std / std::sqrt(50.0) + 1e-4);
  EXPECT_GT(k1.mean, 10.0 * (std::abs(k0.mean) + k0.std / std::sqrt(50.0)));
  EXPECT_GT(k1.std, 0.0);
  // The subset size is capped at the sets' sizes.
  EXPECT_EQ(kernel_inception_distance(x, same.slice(0, 0, 100), 2, 1000, 0).subset_size, 100);
}

TEST(PrecisionRecall, IdenticalSetsGiveOneAndDistantSetsZero) {
  const auto x = gaussian_rows(300, {0, 0, 0}, {1, 1, 1}, 6);
  const PrecisionRecall same = precision_recall(x, x, 3);
  EXPECT_DOUBLE_EQ(same.precision, 1.0);
  EXPECT_DOUBLE_EQ(same.recall, 1.0);
  const PrecisionRecall apart = precision_recall(x, x + 100.0, 3);
  EXPECT_DOUBLE_EQ(apart.precision, 0.0);
  EXPECT_DOUBLE_EQ(apart.recall, 0.0);
}

TEST(PrecisionRecall, MatchesAHandComputedCase) {
  // Real 0..4 on a line, k = 1: every real ball has radius 1. Fake -3, 0.5, 2.2, 10, 11 have
  // radii 3.5, 1.7, 1.7, 1, 1. Inside the real manifold: 0.5 and 2.2 (precision 2/5); real
  // points inside the fake one: 0 (by -3), 1, 2, 3 (by 0.5 and 2.2), not 4 (recall 4/5).
  const auto real = torch::tensor({0.0, 1.0, 2.0, 3.0, 4.0}, torch::kFloat64).unsqueeze(1);
  const auto fake = torch::tensor({-3.0, 0.5, 2.2, 10.0, 11.0}, torch::kFloat64).unsqueeze(1);
  const PrecisionRecall pr = precision_recall(real, fake, 1);
  EXPECT_DOUBLE_EQ(pr.precision, 0.4);
  EXPECT_DOUBLE_EQ(pr.recall, 0.8);
}

TEST(PrecisionRecall, NeedsMoreThanKPoints) {
  const auto x = torch::zeros({3, 2});
  EXPECT_THROW(precision_recall(x, x, 3), Error);
}
