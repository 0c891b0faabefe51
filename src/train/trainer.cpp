#include "diffuse/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "diffuse/core/compat.h"
#include "diffuse/core/device.h"
#include "diffuse/core/error.h"
#include "diffuse/data/data_loader.h"
#include "diffuse/data/dataset.h"
#include "diffuse/distill/consistency_distillation.h"
#include "diffuse/distributed/gradient_sync.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/io/image_io.h"
#include "diffuse/io/tensor_file.h"
#include "diffuse/losses/dsm_loss.h"
#include "diffuse/models/registry.h"
#include "diffuse/sampling/generate.h"
#include "diffuse/sampling/generation_policy.h"
#include "diffuse/train/checkpoint.h"
#include "diffuse/train/classifier_trainer.h"
#include "diffuse/train/ema.h"
#include "diffuse/train/optimizer.h"
#include "train/device_prefetcher.h"
#include "train/graphed_train_step.h"
#include "train/training_common.h"
#include "train/training_evaluator.h"

namespace diffuse {
namespace fs = std::filesystem;

double learning_rate_at(const TrainOptions& o, int64_t step) {
  if (o.warmup_steps > 0 && step < o.warmup_steps)
    return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps);
  if (o.lr_schedule == LrSchedule::constant) return o.lr;
  const double span = static_cast<double>(std::max<int64_t>(1, o.steps - o.warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / span);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(M_PI * progress));
}

namespace {

using training::clip_gradients;
using training::dropout_generator;
using training::format_duration;
using training::progress_bar;
using training::truncate_metrics;

// Puts 4-D weights in channels-last layout so cuDNN picks NHWC kernels.
void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

// Eager steps before train.cuda_graph captures one: they initialise cuBLAS/cuDNN workspaces,
// autograd's accumulators and the optimizer state outside the capture.
constexpr int64_t kGraphWarmupSteps = 3;

// Dropout streams of ranks above 0: reseeded from (seed, rank, step) at every step, so that
// the ranks drop different units and a resumed run redraws the same masks without saving
// every rank's generator (rank 0 keeps the one saved stream of a single-process run).
constexpr uint64_t kRankDropoutStream = 0x72616e6b00000000ULL;  // "rank"

class TrainingRun {
 public:
  TrainingRun(ExperimentConfig config, const TrainerOptions& options)
      : config_(std::move(config)), options_(options),
        comm_(options.communicator ? *options.communicator : single_process_),
        device_(rank_device(resolve_device(config_.train.device, "train.device"), comm_.env())),
        gen_(at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(config_.train.seed))) {}

  TrainResult run();

 private:
  void build();
  void load_dataset();
  std::shared_ptr<DiffusionNet> build_networks(const NoiseSchedule& schedule);
  void build_optimizer();
  void log_setup(const DiffusionNet& net) const;
  void build_distillation(const NoiseSchedule& schedule);
  void initialise_from(const std::string& path);
  LoaderState resume(const std::string& path);
  void check_distributed() const;
  void share_rank0_weights();
  void start();
  void step_once();
  void eager_step();
  void graphed_step();
  torch::Tensor step_body(const torch::Tensor& x0, const TrainingDraw& draw);
  TrainingDraw next_draw(torch::Tensor& x0);
  LossOutput micro_batch_loss();
  void log_progress();
  GenerateOptions sample_options() const;
  void write_samples();
  std::string save_checkpoint();
  Communicator::Pending start_stop_vote(torch::Tensor& vote) const;
  bool stop_voted(Communicator::Pending& pending, const torch::Tensor& vote) const;
  BatchShard shard(int64_t rows) const { return {comm_.rank() * rows, comm_.world_size() * rows}; }

  ExperimentConfig config_;
  TrainerOptions options_;
  Communicator single_process_;
  Communicator& comm_;
  torch::Device device_;
  torch::Generator gen_;
  std::shared_ptr<Dataset> dataset_;
  std::unique_ptr<DataLoader> loader_;
  std::unique_ptr<DevicePrefetcher> prefetcher_;
  Precond precond_{nullptr};
  std::unique_ptr<Ema> ema_;
  Precond ema_precond_{nullptr};
  std::unique_ptr<TrainingOptimizer> optimizer_;
  std::unique_ptr<GraphedTrainStep> graph_;
  torch::Tensor ema_weight_;  // 1 − decay of the next EMA update, on the device (graphs)
  std::unique_ptr<TrainingDrawDistribution> draw_distribution_;
  std::unique_ptr<ConsistencyDistillation> distillation_;  // distill.method consistency
  std::unique_ptr<training::TrainingEvaluator> evaluator_;  // train.eval_every > 0, on rank 0
  std::unique_ptr<GradientSync> grad_sync_;
  std::vector<torch::Tensor> params_;
  bool conditional_ = false;
  bool autocast_ = false;
  int64_t step_ = 0;
  fs::path run_dir_;

  // Logging window, accumulated on the device so that steps never wait for the host.
  torch::Tensor loss_sum_;
  int64_t window_steps_ = 0;
  // Steps timed since window_start_: fewer than window_steps_ right after a resume, whose
  // window began before the stop.
  int64_t timed_steps_ = 0;
  std::chrono::steady_clock::time_point window_start_, run_start_;
  // Seconds of the window spent drawing sample grids (and evaluating) and writing checkpoints, which the
  // img/s figure leaves out (it measures training) and the log reports on their own.
  double window_sample_s_ = 0.0, window_ckpt_s_ = 0.0;
  int64_t run_start_step_ = 0;
  double last_loss_ = 0.0;
};

void TrainingRun::build() {
  auto& c = config_;
  load_dataset();
  const auto schedule = NoiseSchedule::from_options(c.diffusion);
  const auto net = build_networks(schedule);
  build_optimizer();
  draw_distribution_ = std::make_unique<TrainingDrawDistribution>(c.diffusion, schedule);
  if (c.distill.method == DistillMethod::consistency) build_distillation(schedule);
  // The periodic sample settings are checked now rather than at the first grid, hours in.
  if (c.train.sample_every > 0) generation_sigmas(schedule, sample_options());
  autocast_ = device_.is_cuda() && c.train.precision == Precision::bf16;
  if (!device_.is_cuda() && c.train.precision == Precision::bf16)
    spdlog::info("train.precision bf16 applies to CUDA; training in fp32 on {}", device_.str());

  run_dir_ = c.run_dir;
  log_setup(*net);
}

// The dataset, and the model options resolved against it.
void TrainingRun::load_dataset() {
  auto& c = config_;
  dataset_ = make_dataset(c.data);
  const auto& info = dataset_->info();
  if (info.height != info.width)
    throw DataError(c.data.path + ": images are " + std::to_string(info.height) + "x" +
                    std::to_string(info.width) + "; the models need square images (set data.resolution)");
  c.model = training::resolve_model_for_dataset(c.model, info);
  conditional_ = c.model.num_classes > 0;
  if (conditional_ && c.model.num_classes < static_cast<int64_t>(info.class_names.size()))
    throw ConfigError("model.num_classes " + std::to_string(c.model.num_classes) + " is smaller than the " +
                      std::to_string(info.class_names.size()) + " classes of the dataset");
}

// The trained network and its EMA copy, each behind its preconditioning, on the device;
// returns the trained network.
std::shared_ptr<DiffusionNet> TrainingRun::build_networks(const NoiseSchedule& schedule) {
  const auto& c = config_;
  auto net = make_model(c.model);
  const auto boundary = consistency_boundary(c);
  precond_ = Precond(net, c.diffusion.prediction, schedule, boundary);
  ema_ = std::make_unique<Ema>(make_model(c.model), c.train.ema_decay, c.train.ema_warmup);
  ema_->copy_from(*net);
  ema_precond_ = Precond(ema_->net_ptr(), c.diffusion.prediction, schedule, boundary);
  precond_->to(device_);
  ema_precond_->to(device_);
  if (device_.is_cuda() && c.train.channels_last && c.model.arch == ModelArch::unet) {
    to_channels_last(*precond_);
    to_channels_last(*ema_precond_);
  }
  return net;
}

// The gradient sync, the optimizer and, with train.cuda_graph, the graphed step.
void TrainingRun::build_optimizer() {
  const auto& c = config_;
  params_ = precond_->parameters();
  grad_sync_ = std::make_unique<GradientSync>(params_, comm_);
  // The fused kernel on CUDA only: on the CPU the per-tensor loop is as fast and keeps the
  // CPU runs bit-identical to earlier releases.
  const bool fused = c.train.fused_adamw && device_.is_cuda() && compat::has_fused_adamw(device_);
  optimizer_ = std::make_unique<TrainingOptimizer>(params_, c.train, fused);
  if (c.train.cuda_graph) {
    graph_ = std::make_unique<GraphedTrainStep>(
        [this](const torch::Tensor& x0, const TrainingDraw& draw) { return step_body(x0, draw); },
        device_, fused);
    ema_weight_ = torch::zeros({}, torch::TensorOptions(torch::kFloat32).device(device_));
  }
}

void TrainingRun::log_setup(const DiffusionNet& net) const {
  const auto& c = config_;
  const auto& info = dataset_->info();
  if (comm_.distributed())
    spdlog::info("data parallel over {} ranks ({}): {} images a step, {} per rank", comm_.world_size(),
                 comm_.backend_name(), c.train.batch_size * comm_.world_size() * c.train.grad_accum,
                 c.train.batch_size * c.train.grad_accum);
  spdlog::info("model: {} ({} parameters), {} {}x{}x{} images, {} classes, device {}",
               c.model.preset.empty() ? enum_name(c.model.arch, kModelArchNames) : c.model.preset,
               count_parameters(net), info.size, info.channels, info.height, info.width,
               c.model.num_classes, device_.str());
}

// The diffusion keys that define the model's D(x; σ) (not how training draws σ or weighs the loss).
std::string denoiser_keys(const ExperimentConfig& config) {
  YAML::Node n = emit_experiment_config(config)["diffusion"];
  for (const char* key : {"sigma_distribution", "weighting", "min_snr_gamma", "p_mean", "p_std", "p_uncond", "vlb_weight"})
    n.remove(key);
  return to_yaml_string(n);
}

void TrainingRun::build_distillation(const NoiseSchedule& schedule) {
  const auto& c = config_;
  LoadedModel teacher = load_model_for_inference(c.distill.teacher, /*use_ema=*/true, device_);
  // The student starts from the teacher's weights and keeps its D(x; σ), so both must agree.
  if (to_yaml_string(emit_experiment_config(teacher.config)["model"]) !=
      to_yaml_string(emit_experiment_config(c)["model"]))
    throw ConfigError("distill.teacher " + c.distill.teacher + ": the model section must match the teacher's, "
                      "whose weights the student starts from (copy it from the teacher's config.yaml)");
  if (denoiser_keys(teacher.config) != denoiser_keys(c))
    throw ConfigError("distill.teacher " + c.distill.teacher + ": the diffusion section's schedule, prediction and "
                      "σ range must match the teacher's (copy them from the teacher's config.yaml)");
  distillation_ = std::make_unique<ConsistencyDistillation>(c.distill, teacher.precond, c.train.steps);
  spdlog::info("consistency distillation from {} ({} teacher steps, {} to {} points over σ {}..{}); the EMA "
               "network is the target θ⁻ (μ from {:.4f})",
               c.distill.teacher, enum_name(c.distill.solver, kTeacherSolverNames), c.distill.n_start,
               c.distill.n_end, format_double(schedule.sigma_min()), format_double(schedule.sigma_max()),
               distillation_->target_decay(0));
}

// What one process's run has and N ranks cannot share yet, refused before any work.
void TrainingRun::check_distributed() const {
  if (!comm_.distributed()) return;
  if (config_.train.cuda_graph)
    throw ConfigError("train.cuda_graph captures one process's step, without the gradient all-reduce: set "
                      "train.cuda_graph false for a distributed run");
  if (config_.distill.method == DistillMethod::consistency)
    throw ConfigError("distill.method consistency draws its noise per process and runs on one process; start it "
                      "without torchrun, srun or --nproc");
}

void TrainingRun::initialise_from(const std::string& path) {
  CheckpointReader reader(path);
  reader.load_module(reader.has_ema() ? "ema" : "model", *precond_->net_ptr());
  ema_->copy_from(*precond_->net_ptr());
  spdlog::info("initialised from the {} weights of {}", reader.has_ema() ? "EMA" : "raw", path);
}

LoaderState TrainingRun::resume(const std::string& path) {
  CheckpointReader reader(path);
  ConfigNode saved = ConfigNode::load_string(reader.meta().config_yaml, path + " (embedded config)");
  const ExperimentConfig saved_config = parse_experiment_config(saved);
  // The architecture must be the one in the checkpoint; other settings (steps, logging) may change.
  const auto ours = to_yaml_string(emit_experiment_config(config_)["model"]);
  const auto theirs = to_yaml_string(emit_experiment_config(saved_config)["model"]);
  if (ours != theirs)
    spdlog::warn("{}: the checkpoint's model section differs from the config; loading will check shapes", path);
  reader.load_module("model", *precond_->net_ptr());
  if (reader.has_ema()) reader.load_module("ema", ema_->net());
  reader.load_optimizer(optimizer_->adamw());
  optimizer_->state_loaded();
  step_ = reader.meta().step;
  training::restore_generators(reader.meta(), gen_);
  // The logging window in progress (steps since the last metrics row), so that the next row
  // averages the same steps as in a run that never stopped.
  if (reader.meta().loss_window_steps > 0 && reader.meta().loss_window.defined()) {
    // One process saves its sum ([]), N ranks one sum each ([N]). Resumed on another world
    // size every rank starts from their mean, which keeps the window's global mean.
    const auto& windows = reader.meta().loss_window;
    if (windows.dim() == 0) loss_sum_ = windows;
    else if (windows.numel() == comm_.world_size()) loss_sum_ = windows[comm_.rank()];
    else loss_sum_ = windows.mean();
    loss_sum_ = loss_sum_.to(device_);
    window_steps_ = reader.meta().loss_window_steps;
  }
  LoaderState state;
  state.epoch = reader.meta().loader_epoch;
  state.position = reader.meta().loader_position;
  if (comm_.is_root()) truncate_metrics(run_dir_ / "metrics.jsonl", step_);
  spdlog::info("resumed from {} at step {}", path, step_);
  return state;
}

void TrainingRun::step_once() {
  optimizer_->set_lr(learning_rate_at(config_.train, step_));
  if (comm_.rank() > 0)
    dropout_generator().set_current_seed(splitmix64(splitmix64(static_cast<uint64_t>(config_.train.seed) ^
                                                               kRankDropoutStream ^ static_cast<uint64_t>(comm_.rank())) ^
                                                    static_cast<uint64_t>(step_)));
  if (graph_ && step_ - run_start_step_ >= kGraphWarmupSteps) graphed_step();
  else eager_step();
  ++window_steps_;
  ++timed_steps_;
}

TrainingDraw TrainingRun::next_draw(torch::Tensor& x0) {
  Batch batch = prefetcher_->next();
  x0 = batch.images;
  torch::Tensor labels;
  if (conditional_) labels = batch.labels;
  TrainingDraw draw = draw_distribution_->draw(x0, labels, precond_->net().null_label(), gen_, shard(x0.size(0)));
  // Couplings (reflow): the noise each image was generated from replaces the fresh draw.
  if (batch.noise.defined()) draw.noise = batch.noise;
  return draw;
}

LossOutput TrainingRun::micro_batch_loss() {
  if (!distillation_) {
    torch::Tensor x0;
    const TrainingDraw draw = next_draw(x0);
    compat::CudaAutocastGuard autocast(autocast_);
    return dsm_loss(precond_, x0, draw, config_.diffusion);
  }
  Batch batch = prefetcher_->next();
  torch::Tensor labels;
  if (conditional_) labels = draw_distribution_->drop_labels(batch.labels, precond_->net().null_label(), gen_);
  compat::CudaAutocastGuard autocast(autocast_);
  return distillation_->loss(precond_, ema_precond_, batch.images, labels, gen_, step_);
}

void TrainingRun::eager_step() {
  const auto& t = config_.train;
  optimizer_->zero_grad();
  for (int micro = 0; micro < t.grad_accum; ++micro) {
    const LossOutput out = micro_batch_loss();
    // Only the last micro-batch's backward pass all-reduces (the earlier ones accumulate).
    if (micro == t.grad_accum - 1) grad_sync_->arm();
    (out.loss / static_cast<double>(t.grad_accum)).backward();
    auto detached = out.loss.detach() / static_cast<double>(t.grad_accum);
    loss_sum_ = loss_sum_.defined() ? loss_sum_ + detached : detached;
  }
  grad_sync_->finish();
  clip_gradients(params_, t.grad_clip);
  optimizer_->step();
  ++step_;
  if (distillation_) {
    // θ⁻ ← μ(k) θ⁻ + (1 − μ(k)) θ (Song et al. 2023, Algorithm 2).
    ema_->update(*precond_->net_ptr(), torch::full({}, 1.0 - distillation_->target_decay(step_ - 1),
                                                   torch::TensorOptions(torch::kFloat32).device(device_)));
  } else {
    ema_->update(*precond_->net_ptr(), step_);
  }
}

// What the CUDA graph captures: one micro-batch (train.cuda_graph refuses grad_accum > 1).
torch::Tensor TrainingRun::step_body(const torch::Tensor& x0, const TrainingDraw& draw) {
  LossOutput out;
  {
    compat::CudaAutocastGuard autocast(autocast_);
    out = dsm_loss(precond_, x0, draw, config_.diffusion);
  }
  out.loss.backward();
  clip_gradients(params_, config_.train.grad_clip);
  optimizer_->step();
  ema_->update(*precond_->net_ptr(), ema_weight_);
  return out.loss.detach();
}

void TrainingRun::graphed_step() {
  torch::Tensor x0;
  const TrainingDraw draw = next_draw(x0);
  ema_weight_.fill_(1.0 - ema_->decay_at(step_ + 1));
  // The replay writes fresh gradients over those of the capture; dropping them here would free
  // the memory the graph writes to.
  const auto loss = graph_->run(x0, draw);
  ++step_;
  loss_sum_ = loss_sum_.defined() ? loss_sum_ + loss : loss.clone();
}

void TrainingRun::log_progress() {
  const auto now = std::chrono::steady_clock::now();
  const double window_s = std::chrono::duration<double>(now - window_start_).count();
  const double total_s = std::chrono::duration<double>(now - run_start_).count();
  // Global figures: the loss averaged over the ranks, the images of all ranks.
  auto window = loss_sum_.detach().clone();
  comm_.all_reduce_sum(window, "the loss average of the log line");
  const double mean_loss = window.item<double>() / static_cast<double>(window_steps_ * comm_.world_size());
  const int64_t images = timed_steps_ * config_.train.batch_size * config_.train.grad_accum * comm_.world_size();
  const double train_s = window_s - window_sample_s_ - window_ckpt_s_;
  const double img_s = images / std::max(train_s, 1e-9);
  const double eta = training::eta_seconds(config_.train.steps, step_, run_start_step_, total_s);
  const double lr = learning_rate_at(config_.train, step_ - 1);
  training::check_loss_finite(mean_loss, step_);
  spdlog::info("step {}/{} {} {:.0f}% | loss {:.4f} | lr {:.2e} | {:.0f} img/s | sampling {:.1f} s, "
               "checkpoints {:.1f} s | ETA {}",
               step_, config_.train.steps, progress_bar(static_cast<double>(step_) / config_.train.steps),
               100.0 * step_ / config_.train.steps, mean_loss, lr, img_s, window_sample_s_, window_ckpt_s_,
               format_duration(eta));
  last_loss_ = mean_loss;
  loss_sum_ = torch::Tensor();
  window_steps_ = 0;
  timed_steps_ = 0;
  window_start_ = now;
  if (!comm_.is_root()) {
    window_sample_s_ = window_ckpt_s_ = 0.0;
    return;
  }
  std::ofstream metrics(run_dir_ / "metrics.jsonl", std::ios::app);
  metrics << "{\"step\": " << step_ << ", \"loss\": " << format_double(mean_loss)
          << ", \"lr\": " << format_double(lr) << ", \"img_per_s\": " << format_double(std::round(img_s * 1000) / 1000)
          << ", \"sample_s\": " << format_double(std::round(window_sample_s_ * 1000) / 1000)
          << ", \"ckpt_s\": " << format_double(std::round(window_ckpt_s_ * 1000) / 1000)
          << ", \"elapsed_s\": " << format_double(std::round(total_s * 10) / 10)
          << ", \"peak_memory_mb\": " << compat::peak_memory_bytes(device_) / (1 << 20) << "}\n";
  window_sample_s_ = window_ckpt_s_ = 0.0;
}

GenerateOptions TrainingRun::sample_options() const {
  const auto& s = config_.train.sample;
  GenerateOptions g;
  g.sampler = s.sampler;
  g.steps = s.steps;
  // Guidance needs a trained null class; without label dropout it would steer by noise.
  g.cfg = guidance_trained(config_) ? s.cfg : 1.0;
  for (int i = 0; i < s.count; ++i) g.seeds.push_back(static_cast<uint64_t>(i));
  g.batch_size = std::min<int64_t>(s.count, 256);
  g.bf16 = autocast_;
  g.sampler_options.clip_denoised = default_clip_denoised(config_.data);
  return g;
}

void TrainingRun::write_samples() {
  const auto start = std::chrono::steady_clock::now();
  // Sampling must not disturb the training random streams (dropout draws from the default generator).
  const auto saved_default = dropout_generator().get_state();
  auto images = generate_samples(ema_precond_, sample_options());
  dropout_generator().set_state(saved_default);
  const int64_t classes = config_.model.num_classes;
  const int64_t channels = images.size(1);
  const auto stem = run_dir_ / "samples" / ("step_" + std::to_string(step_));
  std::string path;
  if (channels == 1 || channels == 3) {
    path = stem.string() + image_extension(channels);
    write_image_grid(path, images, grid_columns(conditional_ ? classes : 0, config_.train.sample.count));
  } else {
    // Latents are not pictures; the samples are kept as a tensor for a decoder to turn into some.
    path = stem.string() + ".pt";
    write_tensor_file(path, images);
  }
  window_sample_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("wrote {}", path);
}

std::string TrainingRun::save_checkpoint() {
  const auto start = std::chrono::steady_clock::now();
  CheckpointMeta meta = training::run_checkpoint_meta(config_, *dataset_, step_, prefetcher_->state(), gen_);
  if (window_steps_ > 0 && loss_sum_.defined()) {
    meta.loss_window = comm_.distributed()
                           ? comm_.all_gather(loss_sum_.detach().reshape({1}), "the loss windows of the checkpoint").cpu()
                           : loss_sum_.detach().cpu();
    meta.loss_window_steps = window_steps_;
  }
  if (!comm_.is_root()) return (run_dir_ / "ckpt" / "last.pt").string();
  const std::string last = training::write_run_checkpoint(run_dir_, meta, *precond_->net_ptr(), ema_->net(),
                                                          optimizer_->adamw(), config_.train.keep);
  window_ckpt_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return last;
}

// A stop request on any rank stops every rank after the same step: each step starts an
// all-reduce of the ranks' requests, which completes alongside the step's gradients.
Communicator::Pending TrainingRun::start_stop_vote(torch::Tensor& vote) const {
  if (!comm_.distributed()) return {};
  const bool requested = options_.stop_requested && options_.stop_requested->load();
  vote = torch::full({1}, requested ? 1.0f : 0.0f);
  return comm_.all_reduce_sum_async(vote, "the stop vote");
}

bool TrainingRun::stop_voted(Communicator::Pending& pending, const torch::Tensor& vote) const {
  if (!comm_.distributed()) return options_.stop_requested && options_.stop_requested->load();
  pending.wait();
  return vote.item<float>() > 0.0f;
}

// Every rank starts from rank 0's weights (its initialisation, or what all ranks loaded).
void TrainingRun::share_rank0_weights() {
  std::vector<torch::Tensor> weights;
  for (torch::nn::Module* module : std::vector<torch::nn::Module*>{precond_->net_ptr().get(), &ema_->net()}) {
    for (const auto& p : module->parameters()) weights.push_back(p);
    for (const auto& b : module->buffers()) weights.push_back(b);
  }
  comm_.broadcast_from_root(weights, "the initial weights");
}

// Everything before the first step: checks, the networks, the resumed or initial state, the
// run folder and the data stream.
void TrainingRun::start() {
  const auto& t = config_.train;
  check_distributed();
  // Weight initialisation and dropout draw from LibTorch's default generator: seed it before
  // the networks are built so that a run repeats whatever ran before it in the process, and
  // save its state in checkpoints so that resuming continues the same stream.
  dropout_generator().set_current_seed(static_cast<uint64_t>(t.seed) + 1);
  const bool root = comm_.is_root();
  const auto earlier_run =
      root ? training::check_run_dir(config_.run_dir, !options_.resume.empty(), options_.overwrite)
           : std::vector<std::string>{};
  build();
  comm_.require_same("resolved config", to_yaml_string(emit_experiment_config(config_)));
  LoaderOptions lo = make_loader_options(config_.data, t.batch_size, static_cast<uint64_t>(t.seed));
  lo.pin_memory = device_.is_cuda();
  lo.rank = comm_.rank();
  lo.world_size = comm_.world_size();
  LoaderState start;
  if (!options_.resume.empty()) {
    start = resume(options_.resume);
  } else {
    // Consistency distillation starts the student from its teacher unless told otherwise.
    const std::string init = !t.init_from.empty() || !distillation_ ? t.init_from : config_.distill.teacher;
    if (!init.empty()) initialise_from(init);
  }
  share_rank0_weights();
  if (t.eval_every > 0 && root) evaluator_ = std::make_unique<training::TrainingEvaluator>(config_, device_, autocast_);
  if (root) training::create_run_dir(run_dir_, earlier_run, config_);
  loader_ = std::make_unique<DataLoader>(dataset_, lo, start);
  prefetcher_ = std::make_unique<DevicePrefetcher>(
      *loader_, device_, device_.is_cuda() && t.channels_last && config_.model.arch == ModelArch::unet);
  precond_->train();
}

TrainResult TrainingRun::run() {
  const auto& t = config_.train;
  const bool root = comm_.is_root();
  start();
  TrainResult result;
  run_start_ = window_start_ = std::chrono::steady_clock::now();
  run_start_step_ = step_;
  while (step_ < t.steps) {
    torch::Tensor vote;
    auto vote_pending = start_stop_vote(vote);
    step_once();
    const bool last = step_ == t.steps;
    if (step_ % t.log_every == 0 || last) log_progress();
    const bool stop = stop_voted(vote_pending, vote);
    const bool checkpoint = step_ % t.ckpt_every == 0 || last || stop;
    const bool samples = t.sample_every > 0 && (step_ % t.sample_every == 0 || last) && !stop;
    const bool evaluate = t.eval_every > 0 && (step_ % t.eval_every == 0 || last) && !stop;
    // The checkpoint comes first, so that a failing or interrupted sample grid loses no training.
    if (checkpoint) result.last_checkpoint = save_checkpoint();
    if (samples && root) write_samples();
    if (evaluate && root) {
      window_sample_s_ += evaluator_->evaluate(ema_precond_, step_, run_dir_ / "metrics.jsonl").seconds;
      training::write_run_curves_picture(run_dir_);
    } else if (step_ % t.ckpt_every == 0 || last) {
      if (root) training::write_run_curves_picture(run_dir_);
    }
    // No rank runs ahead of rank 0's files (a checkpoint it may have to resume from).
    if (checkpoint || samples || evaluate)
      comm_.root_done_then_others_continue("the checkpoint and samples of step " + std::to_string(step_));
    if (stop && !last) {
      // No metrics row for the partial logging window: the checkpoint carries it, so the
      // resumed run writes the same rows as one that never stopped.
      spdlog::warn("stopped at step {} on request; resume with --resume {}", step_, result.last_checkpoint);
      result.interrupted = true;
      break;
    }
  }
  comm_.barrier("the end of training");
  result.step = step_;
  result.last_loss = last_loss_;
  return result;
}

}  // namespace

TrainResult train(const ExperimentConfig& config, const TrainerOptions& options) {
  if (config.model.arch == ModelArch::classifier) {
    if (options.communicator && options.communicator->distributed())
      throw ConfigError("model.arch classifier trains on one process; start it without torchrun, srun or --nproc");
    return train_classifier(config, options);
  }
  TrainingRun run(config, options);
  return run.run();
}

}  // namespace diffuse
