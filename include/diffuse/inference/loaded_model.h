#pragma once
// A trained model ready for sampling: what sample, restore, invert, info, export, distill and
// reflow take from a checkpoint or an exported model file. Loading for training (resume,
// optimizer state) stays with train/checkpoint.h's CheckpointReader.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/config/experiment_config.h"
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

// Loads a checkpoint written by the trainer, or a model file written by export (a
// .safetensors path); `use_ema` picks the EMA weights when present (a warning is logged and
// the raw weights are used otherwise). Throws CheckpointError for a missing, truncated or
// foreign file, naming the path.
LoadedModel load_model_for_inference(const std::string& path, bool use_ema, torch::Device device);

}  // namespace diffuse
