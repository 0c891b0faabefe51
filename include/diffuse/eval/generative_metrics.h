#pragma once
// Sample-quality metrics over feature vectors of generated and reference images (`diffuse
// eval`, training-time evaluation). Features are [N, D] rows; every result is computed in
// float64 on the CPU whatever the input's dtype and device.
#include <torch/torch.h>

#include <cstdint>

namespace diffuse {

// Mean [D] and covariance [D, D] (unbiased, divisor N - 1) of features [N, D], float64.
struct GaussianMoments {
  torch::Tensor mean;
  torch::Tensor cov;
};
GaussianMoments feature_moments(const torch::Tensor& features);

// Fréchet distance between N(μ1, C1) and N(μ2, C2) (Dowson & Landau 1982; FID, Heusel et al.
// 2017 eq. 6): ||μ1 - μ2||² + tr C1 + tr C2 - 2 tr (C1^½ C2 C1^½)^½. The matrix square roots
// come from eigendecompositions of symmetric matrices (C1, then C1^½ C2 C1^½, which has the
// eigenvalues of C1 C2), so the result is real; eigenvalues below zero from rounding are
// clamped, and a clearly negative one (a covariance that is not positive semi-definite) is
// reported with a warning. Throws Error when the shapes do not match.
double frechet_distance(const GaussianMoments& a, const GaussianMoments& b);

// Kernel Inception Distance (Bińkowski et al. 2018): the unbiased estimator of MMD² with the
// cubic polynomial kernel k(x, y) = (xᵀy / D + 1)³, averaged over `subsets` random subsets
// of `subset_size` rows of each set (drawn without replacement within a subset, from a
// generator seeded by `seed`; subset_size is capped at the smaller set's size).
struct KidResult {
  double mean = 0.0;
  double std = 0.0;          // standard deviation over the subsets
  int64_t subsets = 0;
  int64_t subset_size = 0;
};
KidResult kernel_inception_distance(const torch::Tensor& real, const torch::Tensor& fake, int64_t subsets,
                                    int64_t subset_size, uint64_t seed);

// Improved precision and recall (Kynkäänniemi et al. 2019, eq. 1-2): each set's manifold is
// the union of balls around its points with the distance to the k-th nearest other point as
// radius; precision is the share of fake points inside the real manifold, recall the share
// of real points inside the fake manifold. Needs more than k points in each set.
struct PrecisionRecall {
  double precision = 0.0;
  double recall = 0.0;
};
PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& fake, int64_t k = 3);

}  // namespace diffuse
