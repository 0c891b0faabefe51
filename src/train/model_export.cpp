#include "diffuse/train/model_export.h"

#include <nlohmann/json.hpp>

#include "diffuse/core/config_node.h"
#include "diffuse/io/safetensors.h"
#include "diffuse/train/checkpoint.h"

namespace diffuse {

ExportSummary write_exported_model(const std::string& out, DiffusionNet& net, const ExperimentConfig& config,
                                   int64_t step, const std::string& weights, const std::vector<std::string>& class_names) {
  SafetensorsContents file;
  for (const auto& p : net.named_parameters(true)) file.tensors.emplace_back(p.key(), p.value());
  for (const auto& b : net.named_buffers(true)) file.tensors.emplace_back(b.key(), b.value());
  ExportSummary summary;
  for (const auto& entry : file.tensors) summary.bytes += entry.second.numel() * entry.second.element_size();
  summary.tensors = static_cast<int64_t>(file.tensors.size());
  summary.weights = weights;
  summary.step = step;
  file.metadata = {{"format", kExportedModelFormat},
                   {"config", to_yaml_string(emit_experiment_config(config))},
                   {"step", std::to_string(step)},
                   {"weights", weights},
                   {"class_names", nlohmann::json(class_names).dump()}};
  write_safetensors(out, file);
  return summary;
}

ExportSummary export_model(const std::string& checkpoint, const std::string& out, bool use_ema) {
  LoadedModel loaded = load_model_for_inference(checkpoint, use_ema, torch::kCPU);
  return write_exported_model(out, loaded.precond->net(), loaded.config, loaded.step,
                              loaded.using_ema ? "ema" : "raw", loaded.class_names);
}

}  // namespace diffuse
