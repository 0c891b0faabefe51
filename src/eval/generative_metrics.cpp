#include "diffuse/eval/generative_metrics.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "diffuse/core/error.h"

namespace diffuse {
namespace {

torch::Tensor as_rows(const torch::Tensor& features, const char* what) {
  if (features.dim() != 2 || features.size(0) < 1)
    throw Error(std::string(what) + ": expected features [N, D] with N >= 1, found shape " +
                std::to_string(features.dim()) + "-d with " + std::to_string(features.numel()) + " values");
  return features.detach().to(torch::kCPU, torch::kFloat64).contiguous();
}

// Square root of a symmetric positive semi-definite matrix by eigendecomposition; eigenvalues
// below zero (rounding) are clamped. `what` names the matrix in the warning for a clearly
// negative eigenvalue.
torch::Tensor symmetric_sqrt(const torch::Tensor& m, const char* what) {
  const auto [values, vectors] = torch::linalg_eigh(0.5 * (m + m.t()));
  const double largest = values.abs().max().item<double>();
  const double smallest = values.min().item<double>();
  if (smallest < -1e-6 * std::max(largest, 1e-300))
    spdlog::warn("Fréchet distance: {} has eigenvalue {:.3g} (largest {:.3g}); it is not positive "
                 "semi-definite beyond rounding, so the distance is approximate",
                 what, smallest, largest);
  return vectors.matmul(torch::diag(values.clamp_min(0).sqrt())).matmul(vectors.t());
}

// Squared Euclidean distances [A, B] between the rows of a and b (float64).
torch::Tensor squared_distances(const torch::Tensor& a, const torch::Tensor& b) {
  const auto d = a.square().sum(1, true) + b.square().sum(1).unsqueeze(0) - 2.0 * a.matmul(b.t());
  return d.clamp_min(0);
}

// Squared distance from each row of `points` to its k-th nearest other row.
torch::Tensor kth_neighbour_radii(const torch::Tensor& points, int64_t k) {
  constexpr int64_t kChunk = 512;
  std::vector<torch::Tensor> radii;
  for (int64_t start = 0; start < points.size(0); start += kChunk) {
    const auto chunk = points.slice(0, start, std::min(start + kChunk, points.size(0)));
    // k + 1 smallest: the point itself (distance 0) comes first.
    const auto nearest = std::get<0>(squared_distances(chunk, points).topk(k + 1, 1, /*largest=*/false));
    radii.push_back(nearest.select(1, k));
  }
  return torch::cat(radii);
}

// Share of `queries` inside the union of balls (centres, squared radii).
double share_inside(const torch::Tensor& queries, const torch::Tensor& centres, const torch::Tensor& radii) {
  constexpr int64_t kChunk = 512;
  int64_t inside = 0;
  for (int64_t start = 0; start < queries.size(0); start += kChunk) {
    const auto chunk = queries.slice(0, start, std::min(start + kChunk, queries.size(0)));
    inside += (squared_distances(chunk, centres) <= radii.unsqueeze(0)).any(1).sum().item<int64_t>();
  }
  return static_cast<double>(inside) / static_cast<double>(queries.size(0));
}

}  // namespace

GaussianMoments feature_moments(const torch::Tensor& features) {
  const auto x = as_rows(features, "feature moments");
  if (x.size(0) < 2) throw Error("feature moments: need at least 2 feature vectors for a covariance, found 1");
  const auto mean = x.mean(0);
  const auto centred = x - mean;
  return {mean, centred.t().matmul(centred) / static_cast<double>(x.size(0) - 1)};
}

double frechet_distance(const GaussianMoments& a, const GaussianMoments& b) {
  const auto mu1 = a.mean.to(torch::kFloat64), mu2 = b.mean.to(torch::kFloat64);
  const auto c1 = a.cov.to(torch::kFloat64), c2 = b.cov.to(torch::kFloat64);
  const int64_t d = mu1.numel();
  if (mu2.numel() != d || c1.sizes() != torch::IntArrayRef{d, d} || c2.sizes() != torch::IntArrayRef{d, d})
    throw Error("Fréchet distance: the two feature sets have different dimensions (" + std::to_string(d) +
                " and " + std::to_string(mu2.numel()) + "); they come from different feature networks");
  const auto s1 = symmetric_sqrt(c1, "the first covariance");
  const auto product = s1.matmul(c2).matmul(s1);
  const auto eig = torch::linalg_eigvalsh(0.5 * (product + product.t()));
  const double largest = eig.abs().max().item<double>();
  const double smallest = eig.min().item<double>();
  if (smallest < -1e-6 * std::max(largest, 1e-300))
    spdlog::warn("Fréchet distance: C1^½ C2 C1^½ has eigenvalue {:.3g} (largest {:.3g}); the distance is approximate",
                 smallest, largest);
  const double trace_sqrt = eig.clamp_min(0).sqrt().sum().item<double>();
  const double mean_term = (mu1 - mu2).square().sum().item<double>();
  const double fd = mean_term + c1.trace().item<double>() + c2.trace().item<double>() - 2.0 * trace_sqrt;
  // Rounding can leave identical inputs a hair below zero.
  return std::max(fd, 0.0);
}

KidResult kernel_inception_distance(const torch::Tensor& real, const torch::Tensor& fake, int64_t subsets,
                                    int64_t subset_size, uint64_t seed) {
  const auto x = as_rows(real, "KID (reference)"), y = as_rows(fake, "KID (samples)");
  if (x.size(1) != y.size(1))
    throw Error("KID: the feature sets have different dimensions (" + std::to_string(x.size(1)) + " and " +
                std::to_string(y.size(1)) + ")");
  if (subsets < 1) throw Error("KID: subsets must be >= 1, found " + std::to_string(subsets));
  const int64_t m = std::min({subset_size, x.size(0), y.size(0)});
  if (m < 2) throw Error("KID: need at least 2 feature vectors in each set, found " +
                         std::to_string(std::min(x.size(0), y.size(0))));
  const double dim = static_cast<double>(x.size(1));
  const auto kernel = [dim](const torch::Tensor& a, const torch::Tensor& b) {
    return (a.matmul(b.t()) / dim + 1.0).pow(3);
  };
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<double> values;
  for (int64_t s = 0; s < subsets; ++s) {
    const auto xs = x.index_select(0, torch::randperm(x.size(0), gen, torch::kLong).slice(0, 0, m));
    const auto ys = y.index_select(0, torch::randperm(y.size(0), gen, torch::kLong).slice(0, 0, m));
    const auto kxx = kernel(xs, xs), kyy = kernel(ys, ys), kxy = kernel(xs, ys);
    // Unbiased MMD² (Gretton et al. 2012, eq. 3): the within-set sums leave out i = j.
    const double within = (kxx.sum() - kxx.trace() + kyy.sum() - kyy.trace()).item<double>() /
                          static_cast<double>(m * (m - 1));
    values.push_back(within - 2.0 * kxy.sum().item<double>() / static_cast<double>(m * m));
  }
  const auto t = torch::tensor(values, torch::kFloat64);
  KidResult result;
  result.mean = t.mean().item<double>();
  result.std = subsets > 1 ? t.std().item<double>() : 0.0;
  result.subsets = subsets;
  result.subset_size = m;
  return result;
}

PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& fake, int64_t k) {
  const auto x = as_rows(real, "precision/recall (reference)"), y = as_rows(fake, "precision/recall (samples)");
  if (x.size(1) != y.size(1))
    throw Error("precision/recall: the feature sets have different dimensions (" + std::to_string(x.size(1)) +
                " and " + std::to_string(y.size(1)) + ")");
  if (k < 1 || x.size(0) <= k || y.size(0) <= k)
    throw Error("precision/recall: k = " + std::to_string(k) + " needs more than k feature vectors in each set, found " +
                std::to_string(x.size(0)) + " and " + std::to_string(y.size(0)));
  PrecisionRecall pr;
  pr.precision = share_inside(y, x, kth_neighbour_radii(x, k));
  pr.recall = share_inside(x, y, kth_neighbour_radii(y, k));
  return pr;
}

}  // namespace diffuse
