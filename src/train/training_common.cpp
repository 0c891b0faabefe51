#include "training_common.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <regex>
#include <sstream>

#include "diffuse/core/atomic_file.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/core/text.h"
#include "diffuse/eval/run_curves.h"
#include "diffuse/io/image_io.h"
#include "diffuse/models/registry.h"

namespace diffuse::training {
namespace fs = std::filesystem;
namespace {

void prune_checkpoints(const fs::path& dir, int keep) {
  std::vector<std::pair<int64_t, fs::path>> numbered;
  const std::regex name_re("step_(\\d+)\\.pt");
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, name_re)) numbered.emplace_back(std::stoll(m[1]), entry.path());
  }
  std::sort(numbered.begin(), numbered.end());
  for (size_t i = 0; i + static_cast<size_t>(keep) < numbered.size(); ++i) fs::remove(numbered[i].second);
}

}  // namespace

ModelOptions resolve_model_for_dataset(const ModelOptions& model, const DatasetInfo& info) {
  ModelOptions resolved = resolve_model_options(model, info.channels, info.height,
                                                static_cast<int64_t>(info.class_names.size()));
  if (resolved.image_size != info.height || resolved.in_channels != info.channels)
    throw ConfigError("model.image_size/in_channels (" + std::to_string(resolved.image_size) + ", " +
                      std::to_string(resolved.in_channels) + ") do not match the dataset (" +
                      std::to_string(info.height) + ", " + std::to_string(info.channels) + ")");
  return resolved;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h" << std::setw(2) << std::setfill('0') << (s % 3600) / 60 << "m";
  else if (s >= 60) out << s / 60 << "m" << std::setw(2) << std::setfill('0') << s % 60 << "s";
  else out << s << "s";
  return out.str();
}

std::string progress_bar(double fraction, int width) {
  const int filled = static_cast<int>(std::round(std::clamp(fraction, 0.0, 1.0) * width));
  return "[" + std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '.') + "]";
}

double eta_seconds(int64_t steps, int64_t step, int64_t start_step, double elapsed_s) {
  const double steps_per_s = static_cast<double>(step - start_step) / std::max(elapsed_s, 1e-9);
  return static_cast<double>(steps - step) / std::max(steps_per_s, 1e-9);
}

void check_loss_finite(double mean_loss, int64_t step) {
  if (!std::isfinite(mean_loss))
    throw Error("training diverged: loss is " + std::to_string(mean_loss) + " at step " + std::to_string(step) +
                " (lower train.lr or enable train.grad_clip)");
}

// Global-norm gradient clipping without a host sync: the scale is computed on the device.
torch::Tensor clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
  std::vector<torch::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().detach().to(torch::kFloat32).norm());
  if (norms.empty()) return torch::zeros({});
  auto total = torch::stack(norms).norm();
  if (max_norm > 0) {
    auto scale = (max_norm / (total + 1e-6)).clamp_max(1.0);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().detach().mul_(scale.to(p.grad().scalar_type()));
  }
  return total;
}

// Keeps metrics.jsonl consistent on resume: rows past the resumed step are dropped.
void truncate_metrics(const fs::path& path, int64_t last_step) {
  if (!fs::exists(path)) return;
  std::ifstream in(path);
  std::string kept, line;
  const std::regex step_re("\"step\":\\s*(\\d+)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, step_re) && std::stoll(m[1]) > last_step) continue;
    kept += line + "\n";
  }
  in.close();
  write_text_file_atomic(path.string(), kept);
}

std::vector<std::string> check_run_dir(const fs::path& run_dir, bool resuming, bool overwrite) {
  if (resuming || !fs::is_directory(run_dir)) return {};
  std::vector<std::string> found;
  for (const char* name : {"config.yaml", "metrics.jsonl", "ckpt", "samples"}) {
    const fs::path path = run_dir / name;
    if (fs::is_directory(path) ? !fs::is_empty(path) : fs::exists(path)) found.emplace_back(name);
  }
  if (found.empty() || overwrite) return found;
  throw ConfigError("run_dir '" + run_dir.string() + "' already holds a run (" + join(found) + "); pass --resume " +
                    (run_dir / "ckpt" / "last.pt").string() + " to continue it, --overwrite to replace it, " +
                    "or set run_dir to a new folder");
}

void create_run_dir(const fs::path& run_dir, const std::vector<std::string>& earlier_run,
                    const ExperimentConfig& config) {
  if (!earlier_run.empty()) spdlog::warn("--overwrite: removing the earlier run's files in {}", run_dir.string());
  for (const auto& name : earlier_run) fs::remove_all(run_dir / name);
  fs::create_directories(run_dir / "ckpt");
  fs::create_directories(run_dir / "samples");
  write_text_file_atomic((run_dir / "config.yaml").string(), to_yaml_string(emit_experiment_config(config)));
}

CheckpointMeta run_checkpoint_meta(const ExperimentConfig& config, const Dataset& dataset, int64_t step,
                                   const LoaderState& loader, torch::Generator& gen) {
  CheckpointMeta meta;
  meta.config_yaml = to_yaml_string(emit_experiment_config(config));
  meta.class_names = dataset.info().class_names;
  meta.step = step;
  meta.loader_epoch = loader.epoch;
  meta.loader_position = loader.position;
  meta.rng_state = gen.get_state();
  meta.default_rng_state = dropout_generator().get_state();
  return meta;
}

void restore_generators(const CheckpointMeta& meta, torch::Generator& gen) {
  if (meta.rng_state.defined()) gen.set_state(meta.rng_state);
  if (meta.default_rng_state.defined()) dropout_generator().set_state(meta.default_rng_state);
}

std::string write_run_checkpoint(const fs::path& run_dir, const CheckpointMeta& meta,
                                 const torch::nn::Module& model, const torch::nn::Module& ema,
                                 torch::optim::Optimizer& optimizer, int keep) {
  const auto dir = run_dir / "ckpt";
  const auto numbered = dir / ("step_" + std::to_string(meta.step) + ".pt");
  write_checkpoint(numbered.string(), meta, model, &ema, &optimizer);
  const auto last = dir / "last.pt";
  copy_file_atomic(numbered.string(), last.string());
  prune_checkpoints(dir, keep);
  if (keep == 0) fs::remove(numbered);
  spdlog::info("checkpoint {}", last.string());
  return last.string();
}

void write_run_curves_picture(const std::filesystem::path& run_dir) {
  const auto path = run_dir / ("curves" + image_extension(3));
  try {
    write_run_curves(run_dir.string(), path.string());
  } catch (const std::exception& e) {
    spdlog::warn("could not draw {}: {}", path.string(), e.what());
  }
}

}  // namespace diffuse::training
