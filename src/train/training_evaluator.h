#pragma once
// Sample-quality evaluation during a diffusion run (train.eval_every, train.eval): FD and
// class accuracy of samples from fixed seeds against reference features computed once at
// the start. Private to src/train.
#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <optional>

#include "diffuse/config/experiment_config.h"
#include "diffuse/eval/feature_network.h"
#include "diffuse/eval/feature_stats.h"
#include "diffuse/precond/precond.h"
#include "diffuse/sampling/generate.h"

namespace diffuse::training {

class TrainingEvaluator {
 public:
  // Loads train.eval.features and computes the reference's features; every failure (a
  // missing network, one that does not take the model's images, a bad reference) is thrown
  // here, before the run folder is touched. `config` has resolved model options.
  TrainingEvaluator(const ExperimentConfig& config, torch::Device device, bool bf16);

  struct Result {
    double fd = 0.0;
    std::optional<double> class_accuracy;
    int64_t samples = 0;
    double seconds = 0.0;
  };
  // Samples from `precond` (the EMA model), computes the metrics and appends the row
  // {"step", "fd", "class_accuracy", "eval_samples", "eval_s"} to `metrics_path`.
  Result evaluate(Precond& precond, int64_t step, const std::filesystem::path& metrics_path);

 private:
  GenerateOptions generate_options_;
  std::unique_ptr<FeatureNetwork> network_;
  FeatureSet reference_;
  bool class_accuracy_ = false;
};

// The reference train.eval.ref names, or by default the data section's dataset with split
// test (idx, cifar10), else the training data itself.
DataOptions default_eval_reference(const DataOptions& data);

}  // namespace diffuse::training
