#pragma once
// What the importers of weight_import.h share: reading the source files, checked lookups in
// a state dict and in diffusers' config.json, the copy of every tensor onto our network
// under its source name, and the diffusion settings of a diffusers pipeline. Private to
// src/interop; one import_* function per source format.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.h"
#include "diffuse/interop/weight_import.h"

namespace diffuse::interop {

using StateDict = std::map<std::string, torch::Tensor>;

inline bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// Replaces the prefix `from` of `name`, if it has it.
inline bool replace_prefix(std::string& name, const std::string& from, const std::string& to) {
  if (!starts_with(name, from)) return false;
  name = to + name.substr(from.size());
  return true;
}

// Replaces the first occurrence of `from` in `name`.
inline void replace_first(std::string& name, const std::string& from, const std::string& to) {
  const auto pos = name.find(from);
  if (pos != std::string::npos) name.replace(pos, from.size(), to);
}

// The files of one import: the state dict and, for diffusers models, their config.json and
// the pipeline's scheduler_config.json (empty objects where there are none).
struct ImportInput {
  std::string source;  // the --from name, for messages
  std::string what;    // what a file of that format is, e.g. "a DiT state dict of the DiT repository"
  std::string weights_path;
  StateDict weights;
  std::string config_path;
  nlohmann::json config = nlohmann::json::object();
  std::string scheduler_path;
  nlohmann::json scheduler = nlohmann::json::object();
};

ImportInput read_import_input(const ImportOptions& options);

// weights[name] with `dims` dimensions; a CheckpointError names the file, the tensor and what
// the source format is when it is absent or misshapen.
const torch::Tensor& require_tensor(const ImportInput& input, const std::string& name, int64_t dims);

// `key` of a JSON object read from `path`, `fallback` when absent or null (diffusers'
// default); a value of another type is a CheckpointError naming the file and the key.
template <class T>
T json_value(const nlohmann::json& json, const std::string& path, const std::string& key, const T& fallback) {
  const auto it = json.find(key);
  if (it == json.end() || it->is_null()) return fallback;
  try {
    return it->template get<T>();
  } catch (const nlohmann::json::exception&) {
    throw CheckpointError(path + ": '" + key + "' is " + it->dump() + ", not of the expected type");
  }
}

template <class T>
T config_value(const ImportInput& input, const std::string& key, const T& fallback) {
  return json_value(input.config, input.config_path, key, fallback);
}

// Refuses a config.json setting that our networks do not have: `key` must be absent, null or `supported`.
void require_config_setting(const ImportInput& input, const std::string& key, const nlohmann::json& supported);

// The config.json is required (the weights alone do not give `needed`).
void require_config(const ImportInput& input, const std::string& needed);

// Copies every parameter and buffer of `net` from `weights` under its source name; a
// missing, misshapen or unused source tensor is named as the source names it.
void copy_mapped(torch::nn::Module& net, const StateDict& weights, const ImportInput& input,
                 const std::function<std::string(const std::string&)>& source_name);

// diffusers' older attention names (query/key/value/proj_attn, 1×1 convolutions in the LDM
// form) as the current ones (to_q/to_k/to_v/to_out.0, Linear).
StateDict with_current_attention_names(StateDict weights);

// Each attention's to_q, to_k, to_v (weight and bias) as one `to_qkv` tensor stacked in that
// order, which is how our attention layers hold them; `conv` reshapes the weights (and
// to_out.0's) to 1×1 convolutions.
StateDict with_fused_qkv(StateDict weights, const ImportInput& input, bool conv);

// n such that prefix + i + suffix is in `weights` for every i < n.
int count_prefixed(const StateDict& weights, const std::string& prefix, const std::string& suffix);

// The training schedule and prediction of a diffusers pipeline from its scheduler config
// (DDPM's linear β, 1000 steps, ε when there is none).
DiffusionOptions pipeline_diffusion(const ImportInput& input);

// Writes a diffusion network as an exported model with class names "0".."K-1".
ImportSummary write_imported_model(const std::string& out, DiffusionNet& net, const ExperimentConfig& config,
                                   std::string description);

ImportSummary import_dit_official(const ImportInput& input, const ImportOptions& options);
ImportSummary import_diffusers_dit(const ImportInput& input, const ImportOptions& options);
ImportSummary import_diffusers_unet2d(const ImportInput& input, const ImportOptions& options);
ImportSummary import_diffusers_vae(const ImportInput& input, const ImportOptions& options);

}  // namespace diffuse::interop
