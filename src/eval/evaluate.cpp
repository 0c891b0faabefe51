#include "diffuse/eval/evaluate.h"

#include "diffuse/core/error.h"

namespace diffuse {

double class_accuracy(const torch::Tensor& logits, const std::vector<int64_t>& labels) {
  if (!logits.defined() || logits.dim() != 2 || logits.size(0) != static_cast<int64_t>(labels.size()) || labels.empty())
    throw DataError("class accuracy: expected logits [N, K] for N labelled images");
  const auto target = torch::tensor(labels, torch::kLong);
  return logits.argmax(1).eq(target).to(torch::kFloat64).mean().item<double>();
}

EvalMetrics compute_eval_metrics(const FeatureSet& reference, const FeatureSet& samples,
                                 const EvalMetricsOptions& options) {
  check_same_network(reference, samples);
  EvalMetrics m;
  m.samples = samples.features.size(0);
  m.references = reference.features.size(0);
  m.fd = frechet_distance(reference.moments, samples.moments);
  m.kid = kernel_inception_distance(reference.features, samples.features, options.kid_subsets,
                                    options.kid_subset_size, options.seed);
  m.pr = precision_recall(reference.features, samples.features, options.pr_neighbours);
  if (options.class_accuracy) {
    if (samples.labels.empty())
      throw DataError(samples.source + ": class accuracy needs the samples' intended labels (image names with "
                      "_classK, or sampling.yaml's labels beside samples.pt), and these have none");
    if (!samples.logits.defined())
      throw DataError("class accuracy needs a feature network with classes (a diffuse classifier); '" +
                      samples.network + "' has none");
    const int64_t classes = samples.logits.size(1);
    for (const int64_t label : samples.labels)
      if (label < 0 || label >= classes)
        throw DataError(samples.source + ": intended label " + std::to_string(label) + " is outside the " +
                        std::to_string(classes) + " classes of the feature network");
    m.class_accuracy = class_accuracy(samples.logits, samples.labels);
  }
  return m;
}

}  // namespace diffuse
