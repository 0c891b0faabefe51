#include "train/training_evaluator.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <fstream>

#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/eval/evaluate.h"
#include "diffuse/sampling/generation_policy.h"
#include "train/training_common.h"

namespace diffuse::training {

DataOptions default_eval_reference(const DataOptions& data) {
  DataOptions ref = data;
  if (data.type == DatasetType::idx || data.type == DatasetType::cifar10) ref.split = "test";
  ref.limit = 0;
  return ref;
}

TrainingEvaluator::TrainingEvaluator(const ExperimentConfig& config, torch::Device device, bool bf16) {
  const auto& e = config.train.eval;
  if (config.data.type == DatasetType::latents)
    throw ConfigError("train.eval_every: evaluation compares pictures, and latents are none (decode them first); "
                      "set train.eval_every 0");
  network_ = load_feature_network(e.features, TorchScriptInput{}, device);
  // A network that does not take the model's images fails now, not at the first evaluation.
  network_->extract(torch::zeros({2, config.model.in_channels, config.model.image_size, config.model.image_size}));
  const std::string source = e.ref.empty() ? "the test split of the training data" : e.ref;
  spdlog::info("evaluation: features of {} under {}", source, network_->identity());
  reference_ = e.ref.empty() ? extract_features(*network_, default_eval_reference(config.data), source, 256)
                             : extract_features(*network_, e.ref, 0, 256);

  const int64_t classes = config.model.num_classes;
  class_accuracy_ = classes > 0 && network_->num_classes() == classes;
  auto& g = generate_options_;
  g.sampler = e.sampler;
  g.steps = e.steps;
  g.cfg = guidance_trained(config) ? e.cfg : 1.0;
  for (int i = 0; i < e.samples; ++i) g.seeds.push_back(static_cast<uint64_t>(i));
  for (int64_t k = 0; k < classes; ++k) g.labels.push_back(k);
  g.batch_size = std::min<int64_t>(e.samples, 256);
  g.bf16 = bf16;
  g.sampler_options.clip_denoised = default_clip_denoised(config.data);
  // The settings are checked now rather than at the first evaluation.
  generation_sigmas(NoiseSchedule::from_options(config.diffusion), g);
}

TrainingEvaluator::Result TrainingEvaluator::evaluate(Precond& precond, int64_t step,
                                                      const std::filesystem::path& metrics_path) {
  const auto start = std::chrono::steady_clock::now();
  // Sampling must not disturb the training random streams (dropout draws from the default generator).
  const auto saved_default = dropout_generator().get_state();
  const auto images = generate_samples(precond, generate_options_);
  dropout_generator().set_state(saved_default);
  std::vector<int64_t> labels;
  if (!generate_options_.labels.empty())
    for (size_t k = 0; k < generate_options_.seeds.size(); ++k)
      labels.push_back(generate_options_.labels[k % generate_options_.labels.size()]);
  const FeatureSet samples =
      extract_features(*network_, images, labels, "samples at step " + std::to_string(step), 256);
  Result r;
  r.samples = images.size(0);
  r.fd = frechet_distance(reference_.moments, samples.moments);
  if (class_accuracy_) r.class_accuracy = class_accuracy(samples.logits, samples.labels);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::ofstream metrics(metrics_path, std::ios::app);
  metrics << "{\"step\": " << step << ", \"fd\": " << format_double(r.fd);
  if (r.class_accuracy) metrics << ", \"class_accuracy\": " << format_double(*r.class_accuracy);
  metrics << ", \"eval_samples\": " << r.samples << ", \"eval_s\": " << format_double(std::round(r.seconds * 10) / 10)
          << "}\n";
  spdlog::info("eval at step {}: FD {:.2f}{} ({} samples, {:.1f} s)", step, r.fd,
               r.class_accuracy ? fmt::format(", class accuracy {:.3f}", *r.class_accuracy) : std::string(),
               r.samples, r.seconds);
  return r;
}

}  // namespace diffuse::training
