#pragma once
// Checkpoints (DESIGN §4): one file holding model, EMA, optimizer state, step, RNG and
// loader state, class names and the resolved YAML; written to a temp file and renamed.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "diffuse/core/experiment_config.h"
#include "diffuse/precond/precond.h"

namespace diffuse {

// What inference (sample, restore, info) needs from a checkpoint.
struct LoadedModel {
  ExperimentConfig config;          // resolved: model options have no "from dataset" values
  Precond precond{nullptr};         // network + preconditioning, in eval mode, on `device`
  int64_t step = 0;
  bool has_ema = false;
  bool using_ema = false;
  std::vector<std::string> class_names;
};

// Loads a checkpoint written by the trainer; `use_ema` picks the EMA weights when present
// (a warning is logged and the raw weights are used otherwise). Throws CheckpointError for
// a missing, truncated or foreign file, naming the path.
LoadedModel load_model_for_inference(const std::string& path, bool use_ema, torch::Device device);

// Parses "auto" | "cpu" | "cuda" | "cuda:N" (ConfigError naming `what` on bad text or a
// CUDA device that is not there). "auto" picks cuda:0 when available.
torch::Device resolve_device(const std::string& text, const std::string& what);

}  // namespace diffuse
