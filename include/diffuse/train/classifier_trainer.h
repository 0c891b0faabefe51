#pragma once
// Training and loading of noise-conditional classifiers (model.arch: classifier), for
// classifier guidance (Dhariwal & Nichol 2021) and, trained on clean images
// (classifier.noise: none), as a feature network for evaluation. The run folder, checkpoints,
// EMA, resume and Ctrl-C behave as for diffusion models (trainer.h); instead of sample grids
// each checkpoint logs the test-split accuracy at classifier.eval_sigmas.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/config/experiment_config.h"
#include "diffuse/data/dataset.h"
#include "diffuse/precond/classifier_guidance.h"
#include "diffuse/train/trainer.h"

namespace diffuse {

// Trains per `config` (model.arch must be classifier): x = x0 + σ n with σ from the diffusion
// section's training distribution (σ = 0 with classifier.noise none), cross-entropy on the
// labels. TrainResult::last_loss is the last window's mean cross-entropy.
TrainResult train_classifier(const ExperimentConfig& config, const TrainerOptions& options);

struct LoadedClassifier {
  ExperimentConfig config;
  NoisyClassifier classifier{nullptr};  // in eval mode, on `device`
  int64_t step = 0;
  bool using_ema = false;
  std::vector<std::string> class_names;
};

// Loads a classifier checkpoint written by train_classifier (EMA weights when `use_ema` and
// present). Throws CheckpointError naming the path for a missing or foreign file, and
// ConfigError for a diffusion checkpoint.
LoadedClassifier load_classifier(const std::string& path, bool use_ema, torch::Device device);

// Accuracy of `classifier` on `dataset` at each σ (x = x0 + σ n, noise from a generator
// seeded by `seed`), over at most `max_batches` batches of `batch_size` (0 = all).
std::map<double, double> classifier_accuracy(NoisyClassifier& classifier, std::shared_ptr<Dataset> dataset,
                                             const std::vector<double>& sigmas, int64_t batch_size,
                                             int64_t max_batches, uint64_t seed);

}  // namespace diffuse
