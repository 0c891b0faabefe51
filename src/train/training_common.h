#pragma once
// Pieces shared by the diffusion trainer (trainer.cpp) and the classifier trainer
// (classifier_trainer.cpp). Private to src/train.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "diffuse/config/experiment_config.h"
#include "diffuse/data/data_loader.h"
#include "diffuse/data/dataset.h"
#include "diffuse/train/checkpoint.h"

namespace diffuse::training {

// Dropout draws from LibTorch's process-wide CPU generator (torch::dropout takes no
// generator), so the trainers seed it, save its state in checkpoints and restore it around
// sampling.
inline at::Generator dropout_generator() { return at::detail::getDefaultCPUGenerator(); }

// "1h05m", "3m07s", "42s".
std::string format_duration(double seconds);
// "[#####...............]"
std::string progress_bar(double fraction, int width = 20);
// Seconds left of a run of `steps` at the pace since it (re)started at `start_step`
// `elapsed_s` seconds ago: the ETA of the log lines.
double eta_seconds(int64_t steps, int64_t step, int64_t start_step, double elapsed_s);
// Throws Error naming the step when the logged mean loss is NaN or infinite.
void check_loss_finite(double mean_loss, int64_t step);

// Global-norm gradient clipping without a host sync: the scale is computed on the device.
// Returns the norm before clipping.
torch::Tensor clip_gradients(const std::vector<torch::Tensor>& params, double max_norm);

// Keeps metrics.jsonl consistent on resume: rows past the resumed step are dropped.
void truncate_metrics(const std::filesystem::path& path, int64_t last_step);

// `model` with its "from the dataset" values resolved against `info`; throws ConfigError when
// the resolved image_size or in_channels do not match the dataset's.
ModelOptions resolve_model_for_dataset(const ModelOptions& model, const DatasetInfo& info);

// A fresh run must not mix its files with an earlier run's (metrics.jsonl would gain a
// second series, ckpt/last.pt would be replaced). Returns the earlier run's files in
// `run_dir` (empty when resuming or when there are none); throws ConfigError naming them
// unless `overwrite` is set.
std::vector<std::string> check_run_dir(const std::filesystem::path& run_dir, bool resuming, bool overwrite);
// Removes `earlier_run` (from check_run_dir), creates ckpt/ and samples/ and writes
// config.yaml. Called once everything is checked (config, data, model, the checkpoint to
// resume), so that a run refused at the start leaves no folder behind.
void create_run_dir(const std::filesystem::path& run_dir, const std::vector<std::string>& earlier_run,
                    const ExperimentConfig& config);

// What every run's checkpoint holds besides the modules: the resolved config, the dataset's
// class names, the step, the loader position and both generators' states.
CheckpointMeta run_checkpoint_meta(const ExperimentConfig& config, const Dataset& dataset, int64_t step,
                                   const LoaderState& loader, torch::Generator& gen);
// Puts the generators of `meta` back (the trainer's and the dropout generator).
void restore_generators(const CheckpointMeta& meta, torch::Generator& gen);

// Writes ckpt/step_N.pt, copies it to ckpt/last.pt and keeps the last `keep` numbered ones
// (none with keep = 0). Returns the path of last.pt.
std::string write_run_checkpoint(const std::filesystem::path& run_dir, const CheckpointMeta& meta,
                                 const torch::nn::Module& model, const torch::nn::Module& ema,
                                 torch::optim::Optimizer& optimizer, int keep);

// Draws RUN_DIR/curves.png (or .ppm without OpenCV) from metrics.jsonl, as `diffuse plot`
// does. A failure is logged as a warning: a picture must never stop a training run.
void write_run_curves_picture(const std::filesystem::path& run_dir);

}  // namespace diffuse::training
