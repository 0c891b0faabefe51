#pragma once
// Exported models: the weights of one network (EMA or raw) as a safetensors file, with the
// resolved config, the training step and the class names in its __metadata__, so that Python
// reads it with `safetensors.torch.load_file` and diffuse sample/restore/invert/distill take
// it wherever they take a checkpoint (inference/loaded_model.h's load_model_for_inference).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/config/experiment_config.h"
#include "diffuse/models/diffusion_net.h"

namespace diffuse {

// The __metadata__ "format" value of an exported model.
constexpr const char* kExportedModelFormat = "diffuse-model-1";

struct ExportSummary {
  int64_t tensors = 0;
  int64_t bytes = 0;
  int64_t step = 0;
  std::string weights;  // "ema" or "raw"
};

// The parameters, then the buffers, of `module` under their dotted names: what an exported
// file holds of a network.
std::vector<std::pair<std::string, torch::Tensor>> module_tensors(torch::nn::Module& module);

// Writes the EMA weights of `checkpoint` (or the raw ones: use_ema false, or no EMA in it)
// to `out` atomically; `checkpoint` may itself be an exported file.
ExportSummary export_model(const std::string& checkpoint, const std::string& out, bool use_ema);

// Writes `net` (built from `config.model`) as an exported model file, atomically.
ExportSummary write_exported_model(const std::string& out, DiffusionNet& net, const ExperimentConfig& config,
                                   int64_t step, const std::string& weights, const std::vector<std::string>& class_names);

}  // namespace diffuse
