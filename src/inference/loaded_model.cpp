#include "diffuse/inference/loaded_model.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <map>
#include <optional>

#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/distill/consistency_distillation.h"
#include "diffuse/io/safetensors.h"
#include "diffuse/models/registry.h"
#include "diffuse/train/checkpoint.h"
#include "diffuse/train/model_export.h"
#include "train/named_weights.h"

namespace diffuse {
namespace {

// The metadata value `key` of an exported model file, or a CheckpointError.
const std::string& exported_value(const SafetensorsContents& file, const std::string& path, const char* key) {
  const auto it = file.metadata.find(key);
  if (it == file.metadata.end())
    throw CheckpointError(path + ": not a model exported by diffuse (its __metadata__ lacks '" + key +
                          "'; foreign weights come in through diffuse import)");
  return it->second;
}

// Config, step, class names and the weights to load, from a checkpoint or an exported file.
struct ModelSource {
  std::string config_yaml;
  int64_t step = 0;
  std::vector<std::string> class_names;
  bool has_ema = false;
  std::map<std::string, torch::Tensor> weights;
  std::string where;  // prefix of weight errors
};

ModelSource read_exported_model(const std::string& path, bool use_ema) {
  const SafetensorsContents file = read_safetensors(path);
  const auto format = file.metadata.find("format");
  if (format == file.metadata.end() || format->second != kExportedModelFormat)
    throw CheckpointError(path + ": not a model exported by diffuse (no '" + std::string(kExportedModelFormat) +
                          "' format in its __metadata__; foreign weights come in through diffuse import)");
  ModelSource source;
  source.config_yaml = exported_value(file, path, "config");
  try {
    source.step = std::stoll(exported_value(file, path, "step"));
    source.class_names = nlohmann::json::parse(exported_value(file, path, "class_names")).get<std::vector<std::string>>();
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": __metadata__ 'step' must be an integer and 'class_names' a JSON list of strings (" +
                          e.what() + ")");
  }
  const std::string weights = exported_value(file, path, "weights");
  source.has_ema = weights == "ema";
  if (use_ema != source.has_ema)
    spdlog::warn("{}: holds only the {} weights (exported so); using them", path, weights);
  source.weights = file.tensor_map();
  source.where = path + ": " + weights;
  return source;
}

ModelSource read_checkpoint_meta(const CheckpointReader& reader, const std::string& path, bool use_ema) {
  ModelSource source;
  source.config_yaml = reader.meta().config_yaml;
  source.step = reader.meta().step;
  source.class_names = reader.meta().class_names;
  source.has_ema = reader.has_ema();
  if (use_ema && !source.has_ema) spdlog::warn("{}: no EMA weights in this checkpoint; using the raw weights", path);
  // The weights stay in the archive: CheckpointReader::load_module copies them.
  return source;
}

}  // namespace

LoadedModel load_model_for_inference(const std::string& path, bool use_ema, torch::Device device) {
  LoadedModel loaded;
  const bool exported = is_safetensors_path(path);
  std::optional<CheckpointReader> reader;
  ModelSource source;
  if (exported) {
    source = read_exported_model(path, use_ema);
  } else {
    reader.emplace(path);
    source = read_checkpoint_meta(*reader, path, use_ema);
  }
  ConfigNode root = ConfigNode::load_string(source.config_yaml, path + " (embedded config)");
  loaded.config = parse_experiment_config(root);
  loaded.step = source.step;
  loaded.class_names = source.class_names;
  loaded.has_ema = source.has_ema;
  // An exported file holds one set of weights, whichever it is.
  loaded.using_ema = exported ? loaded.has_ema : use_ema && loaded.has_ema;
  auto net = make_model(loaded.config.model);
  if (exported) load_named_weights(*net, source.weights, source.where);
  else reader->load_module(loaded.using_ema ? "ema" : "model", *net);
  loaded.precond = Precond(net, loaded.config.diffusion.prediction,
                           NoiseSchedule::from_options(loaded.config.diffusion), consistency_boundary(loaded.config));
  loaded.precond->to(device);
  loaded.precond->eval();
  return loaded;
}

}  // namespace diffuse
