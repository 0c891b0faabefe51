#pragma once
// `diffuse eval` as a library call: generated images against reference images (or their
// stats file) under one feature network, giving FD, KID, precision/recall and class accuracy.
#include <optional>
#include <string>

#include "diffuse/eval/feature_stats.h"

namespace diffuse {

struct EvalMetricsOptions {
  int64_t kid_subsets = 100;
  int64_t kid_subset_size = 1000;
  int64_t pr_neighbours = 3;    // k of the k-NN manifolds
  bool class_accuracy = false;  // needs labels on the samples and a feature network with logits
  uint64_t seed = 0;            // KID subsets
};

struct EvalMetrics {
  int64_t samples = 0;
  int64_t references = 0;
  double fd = 0.0;
  KidResult kid;
  PrecisionRecall pr;
  std::optional<double> class_accuracy;  // share of samples the network assigns their intended class
};

// Throws DataError for sets of different networks (check_same_network), too few images for
// a metric, or class accuracy asked for without labels or logits.
EvalMetrics compute_eval_metrics(const FeatureSet& reference, const FeatureSet& samples,
                                 const EvalMetricsOptions& options);

// Share of rows of `logits` whose arg-max is the label.
double class_accuracy(const torch::Tensor& logits, const std::vector<int64_t>& labels);

}  // namespace diffuse
