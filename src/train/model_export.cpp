#include "diffuse/train/model_export.h"

#include <nlohmann/json.hpp>

#include "diffuse/core/config_node.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/io/safetensors.h"

namespace diffuse {

std::vector<std::pair<std::string, torch::Tensor>> module_tensors(torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : module.named_parameters(true)) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) tensors.emplace_back(b.key(), b.value());
  return tensors;
}

ExportSummary write_exported_model(const std::string& out, DiffusionNet& net, const ExperimentConfig& config,
                                   int64_t step, const std::string& weights, const std::vector<std::string>& class_names) {
  SafetensorsContents file;
  file.tensors = module_tensors(net);
  ExportSummary summary;
  summary.tensors = static_cast<int64_t>(file.tensors.size());
  summary.weights = weights;
  summary.step = step;
  file.metadata = {{"format", kExportedModelFormat},
                   {"config", to_yaml_string(emit_experiment_config(config))},
                   {"step", std::to_string(step)},
                   {"weights", weights},
                   {"class_names", nlohmann::json(class_names).dump()}};
  summary.bytes = static_cast<int64_t>(write_safetensors(out, file));
  return summary;
}

ExportSummary export_model(const std::string& checkpoint, const std::string& out, bool use_ema) {
  LoadedModel loaded = load_model_for_inference(checkpoint, use_ema, torch::kCPU);
  return write_exported_model(out, loaded.precond->net(), loaded.config, loaded.step,
                              loaded.using_ema ? "ema" : "raw", loaded.class_names);
}

}  // namespace diffuse
