#include "diffuse/train/classifier_trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "diffuse/core/compat.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/device.h"
#include "diffuse/core/error.h"
#include "diffuse/data/data_loader.h"
#include "diffuse/losses/dsm_loss.h"
#include "diffuse/models/registry.h"
#include "diffuse/train/checkpoint.h"
#include "diffuse/train/ema.h"
#include "training_common.h"

namespace diffuse {
namespace fs = std::filesystem;

std::map<double, double> classifier_accuracy(NoisyClassifier& classifier, std::shared_ptr<Dataset> dataset,
                                             const std::vector<double>& sigmas, int64_t batch_size,
                                             int64_t max_batches, uint64_t seed) {
  torch::NoGradGuard no_grad;
  const auto device = classifier->parameters().front().device();
  LoaderOptions lo;
  lo.batch_size = std::min(batch_size, dataset->info().size);
  lo.shuffle = false;
  lo.drop_last = false;
  lo.num_workers = 0;
  std::map<double, double> accuracy;
  for (size_t k = 0; k < sigmas.size(); ++k) {
    DataLoader loader(dataset, lo);
    const int64_t batches = max_batches > 0 ? std::min(max_batches, loader.batches_per_epoch())
                                            : loader.batches_per_epoch();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed + k);
    int64_t correct = 0, total = 0;
    for (int64_t b = 0; b < batches; ++b) {
      const Batch batch = loader.next();
      const auto noise = torch::randn(batch.images.sizes(), gen, torch::kFloat32);
      const auto x = (batch.images + sigmas[k] * noise).to(device);
      const auto sigma = torch::full({x.size(0)}, sigmas[k], x.options());
      const auto predicted = classifier->forward(x, sigma).argmax(1).cpu();
      correct += (predicted == batch.labels).sum().item<int64_t>();
      total += x.size(0);
    }
    accuracy[sigmas[k]] = static_cast<double>(correct) / static_cast<double>(std::max<int64_t>(total, 1));
  }
  return accuracy;
}

namespace {

std::string accuracy_json(const std::map<double, double>& accuracy) {
  std::string text = "{";
  for (const auto& [sigma, value] : accuracy)
    text += (text.size() > 1 ? ", \"" : "\"") + format_double(sigma) + "\": " +
            format_double(std::round(value * 1e4) / 1e4);
  return text + "}";
}

class ClassifierRun {
 public:
  ClassifierRun(ExperimentConfig config, const TrainerOptions& options)
      : config_(std::move(config)), options_(options),
        device_(resolve_device(config_.train.device, "train.device")),
        gen_(at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(config_.train.seed))) {}

  TrainResult run();

 private:
  void build();
  LoaderState resume(const std::string& path);
  void step_once();
  void log_progress();
  void evaluate();
  std::string save_checkpoint();

  ExperimentConfig config_;
  TrainerOptions options_;
  torch::Device device_;
  torch::Generator gen_;
  std::shared_ptr<Dataset> dataset_, test_dataset_;
  std::unique_ptr<DataLoader> loader_;
  NoisyClassifier classifier_{nullptr}, ema_classifier_{nullptr};
  std::unique_ptr<Ema> ema_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::unique_ptr<TrainingDrawDistribution> draw_distribution_;  // null for classifier.noise none
  std::vector<torch::Tensor> params_;
  bool autocast_ = false;
  int64_t step_ = 0;
  fs::path run_dir_;
  // Logging window, summed on the device: cross-entropy and correct predictions.
  torch::Tensor loss_sum_, correct_sum_;
  int64_t window_steps_ = 0, timed_steps_ = 0, run_start_step_ = 0;
  std::chrono::steady_clock::time_point window_start_, run_start_;
  double last_loss_ = 0.0;
};

void ClassifierRun::build() {
  auto& c = config_;
  dataset_ = make_dataset(c.data);
  const auto& info = dataset_->info();
  c.model = training::resolve_model_for_dataset(c.model, info);
  const auto schedule = NoiseSchedule::from_options(c.diffusion);
  auto net = make_classifier(c.model);
  classifier_ = NoisyClassifier(net, schedule, c.classifier.noise);
  auto average = make_classifier(c.model);
  ema_ = std::make_unique<Ema>(average, c.train.ema_decay, c.train.ema_warmup);
  ema_->copy_from(*net);
  ema_classifier_ = NoisyClassifier(average, schedule, c.classifier.noise);
  classifier_->to(device_);
  ema_classifier_->to(device_);
  ema_classifier_->eval();
  params_ = classifier_->parameters();
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      params_, torch::optim::AdamWOptions(c.train.lr)
                   .betas({c.train.betas[0], c.train.betas[1]})
                   .weight_decay(c.train.weight_decay)
                   .eps(c.train.adam_eps));
  if (c.classifier.noise == ClassifierNoise::noisy)
    draw_distribution_ = std::make_unique<TrainingDrawDistribution>(c.diffusion, schedule);
  autocast_ = device_.is_cuda() && c.train.precision == Precision::bf16;
  if (c.classifier.eval_batches > 0 && !c.classifier.eval_sigmas.empty()) {
    DataOptions test = c.data;
    test.split = "test";
    test.limit = 0;
    try {
      test_dataset_ = make_dataset(test);
    } catch (const Error& e) {
      spdlog::warn("no test accuracy: the test split cannot be read ({})", e.what());
    }
  }
  run_dir_ = c.run_dir;
  spdlog::info("model: classifier ({} parameters, {}), {} {}x{}x{} images, {} classes, device {}",
               count_parameters(*net), enum_name(c.classifier.noise, kClassifierNoiseNames), info.size,
               info.channels, info.height, info.width, c.model.num_classes, device_.str());
}

LoaderState ClassifierRun::resume(const std::string& path) {
  CheckpointReader reader(path);
  ConfigNode saved = ConfigNode::load_string(reader.meta().config_yaml, path + " (embedded config)");
  if (parse_experiment_config(saved).model.arch != ModelArch::classifier)
    throw ConfigError(path + " holds a diffusion model; --resume needs a classifier checkpoint");
  reader.load_module("model", classifier_->net());
  if (reader.has_ema()) reader.load_module("ema", ema_->net<ClassifierNet>());
  reader.load_optimizer(*optimizer_);
  step_ = reader.meta().step;
  training::restore_generators(reader.meta(), gen_);
  training::truncate_metrics(run_dir_ / "metrics.jsonl", step_);
  spdlog::info("resumed from {} at step {}", path, step_);
  return LoaderState{reader.meta().loader_epoch, reader.meta().loader_position};
}

void ClassifierRun::step_once() {
  const auto& t = config_.train;
  const double lr = learning_rate_at(t, step_);
  for (auto& group : optimizer_->param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  optimizer_->zero_grad();
  for (int micro = 0; micro < t.grad_accum; ++micro) {
    Batch batch = loader_->next();
    const auto x0 = batch.images.to(device_, /*non_blocking=*/true);
    const auto labels = batch.labels.to(device_, /*non_blocking=*/true);
    const int64_t b = x0.size(0);
    // σ from the diffusion model's training distribution, so the classifier is accurate where
    // guidance queries it; clean images for a feature network.
    const auto sigma = draw_distribution_ ? draw_distribution_->sample_sigma(b, gen_, device_)
                                      : torch::zeros({b}, x0.options());
    const auto noise = torch::randn(x0.sizes(), gen_, torch::kFloat32).to(device_);
    torch::Tensor logits;
    {
      compat::CudaAutocastGuard autocast(autocast_);
      logits = classifier_(x0 + sigma.view({-1, 1, 1, 1}) * noise, sigma).to(torch::kFloat32);
    }
    const auto loss = torch::nn::functional::cross_entropy(logits, labels);
    (loss / static_cast<double>(t.grad_accum)).backward();
    const auto correct = (logits.argmax(1) == labels).sum().to(torch::kFloat64) / static_cast<double>(b * t.grad_accum);
    const auto detached = loss.detach() / static_cast<double>(t.grad_accum);
    loss_sum_ = loss_sum_.defined() ? loss_sum_ + detached : detached;
    correct_sum_ = correct_sum_.defined() ? correct_sum_ + correct : correct;
  }
  training::clip_gradients(params_, t.grad_clip);
  optimizer_->step();
  ++step_;
  ema_->update(classifier_->net(), step_);
  ++window_steps_;
  ++timed_steps_;
}

void ClassifierRun::log_progress() {
  const auto now = std::chrono::steady_clock::now();
  const double window_s = std::chrono::duration<double>(now - window_start_).count();
  const double total_s = std::chrono::duration<double>(now - run_start_).count();
  const double mean_loss = loss_sum_.item<double>() / static_cast<double>(window_steps_);
  const double accuracy = correct_sum_.item<double>() / static_cast<double>(window_steps_);
  const double img_s = timed_steps_ * config_.train.batch_size * config_.train.grad_accum / std::max(window_s, 1e-9);
  const double eta = training::eta_seconds(config_.train.steps, step_, run_start_step_, total_s);
  const double lr = learning_rate_at(config_.train, step_ - 1);
  training::check_loss_finite(mean_loss, step_);
  spdlog::info("step {}/{} {} | loss {:.4f} | train acc {:.3f} | lr {:.2e} | {:.0f} img/s | ETA {}", step_,
               config_.train.steps, training::progress_bar(static_cast<double>(step_) / config_.train.steps),
               mean_loss, accuracy, lr, img_s, training::format_duration(eta));
  std::ofstream metrics(run_dir_ / "metrics.jsonl", std::ios::app);
  metrics << "{\"step\": " << step_ << ", \"loss\": " << format_double(mean_loss)
          << ", \"train_accuracy\": " << format_double(std::round(accuracy * 1e4) / 1e4)
          << ", \"lr\": " << format_double(lr) << ", \"img_per_s\": " << format_double(std::round(img_s * 1000) / 1000)
          << ", \"elapsed_s\": " << format_double(std::round(total_s * 10) / 10) << "}\n";
  last_loss_ = mean_loss;
  loss_sum_ = correct_sum_ = torch::Tensor();
  window_steps_ = timed_steps_ = 0;
  window_start_ = now;
}

void ClassifierRun::evaluate() {
  if (!test_dataset_) return;
  const auto& c = config_.classifier;
  const auto saved_default = training::dropout_generator().get_state();
  const auto accuracy = classifier_accuracy(ema_classifier_, test_dataset_, c.eval_sigmas,
                                            config_.train.batch_size, c.eval_batches, 0);
  training::dropout_generator().set_state(saved_default);
  const std::string json = accuracy_json(accuracy);
  spdlog::info("test accuracy (EMA) by sigma: {}", json);
  std::ofstream metrics(run_dir_ / "metrics.jsonl", std::ios::app);
  metrics << "{\"step\": " << step_ << ", \"test_accuracy\": " << json << "}\n";
}

std::string ClassifierRun::save_checkpoint() {
  const CheckpointMeta meta = training::run_checkpoint_meta(config_, *dataset_, step_, loader_->state(), gen_);
  return training::write_run_checkpoint(run_dir_, meta, classifier_->net(), ema_->net<ClassifierNet>(),
                                        *optimizer_, config_.train.keep);
}

TrainResult ClassifierRun::run() {
  const auto& t = config_.train;
  training::dropout_generator().set_current_seed(static_cast<uint64_t>(t.seed) + 1);
  const auto earlier_run = training::check_run_dir(config_.run_dir, !options_.resume.empty(), options_.overwrite);
  build();
  LoaderOptions lo = make_loader_options(config_.data, t.batch_size, static_cast<uint64_t>(t.seed));
  LoaderState start;
  if (!options_.resume.empty()) start = resume(options_.resume);
  training::create_run_dir(run_dir_, earlier_run, config_);
  loader_ = std::make_unique<DataLoader>(dataset_, lo, start);
  classifier_->train();
  TrainResult result;
  run_start_ = window_start_ = std::chrono::steady_clock::now();
  run_start_step_ = step_;
  while (step_ < t.steps) {
    step_once();
    const bool last = step_ == t.steps;
    if (step_ % t.log_every == 0 || last) log_progress();
    const bool stop = options_.stop_requested && options_.stop_requested->load();
    if (step_ % t.ckpt_every == 0 || last || stop) {
      // Partial windows are not carried over a stop (unlike the diffusion trainer): the
      // resumed run's first row averages fewer steps.
      if (stop && window_steps_ > 0) log_progress();
      result.last_checkpoint = save_checkpoint();
      if (!stop) evaluate();
      training::write_run_curves_picture(run_dir_);
    }
    if (stop && !last) {
      spdlog::warn("stopped at step {} on request; resume with --resume {}", step_, result.last_checkpoint);
      result.interrupted = true;
      break;
    }
  }
  result.step = step_;
  result.last_loss = last_loss_;
  return result;
}

}  // namespace

TrainResult train_classifier(const ExperimentConfig& config, const TrainerOptions& options) {
  if (config.model.arch != ModelArch::classifier)
    throw ConfigError("train_classifier needs model.arch 'classifier'");
  ClassifierRun run(config, options);
  return run.run();
}

LoadedClassifier load_classifier(const std::string& path, bool use_ema, torch::Device device) {
  CheckpointReader reader(path);
  LoadedClassifier loaded;
  ConfigNode root = ConfigNode::load_string(reader.meta().config_yaml, path + " (embedded config)");
  loaded.config = parse_experiment_config(root);
  if (loaded.config.model.arch != ModelArch::classifier)
    throw ConfigError(path + " holds a diffusion model (model.arch " +
                      enum_name(loaded.config.model.arch, kModelArchNames) +
                      "), not a classifier; train one with model.arch classifier");
  loaded.step = reader.meta().step;
  loaded.class_names = reader.meta().class_names;
  loaded.using_ema = use_ema && reader.has_ema();
  auto net = make_classifier(loaded.config.model);
  reader.load_module(loaded.using_ema ? "ema" : "model", *net);
  loaded.classifier = NoisyClassifier(net, NoiseSchedule::from_options(loaded.config.diffusion),
                                      loaded.config.classifier.noise);
  loaded.classifier->to(device);
  loaded.classifier->eval();
  return loaded;
}

}  // namespace diffuse
