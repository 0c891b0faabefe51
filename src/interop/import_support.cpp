#include "import_support.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "diffuse/core/file_io.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/io/safetensors.h"

namespace diffuse::interop {
namespace {

namespace fs = std::filesystem;

// A state dict from a safetensors file or a torch.save file of {name: tensor} (a training
// checkpoint's "ema" entry when it holds one, as the DiT repository's do).
StateDict read_state_dict(const std::string& path) {
  StateDict weights;
  if (is_safetensors_path(path)) return read_safetensors(path).tensor_map();
  if (!fs::is_regular_file(path)) throw CheckpointError(path + ": weights file not found");
  const std::string file = read_file_bytes(path);
  const std::vector<char> bytes(file.begin(), file.end());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    // LibTorch's unpickler cannot build a Python OrderedDict, which state_dict() returns
    // (pytorch/pytorch#100741, still so in 2.11); safetensors needs no unpickler at all.
    throw CheckpointError(path + ": cannot read it as a torch.save file of {name: tensor} (" +
                          what.substr(0, what.find('\n')) + "); convert it once in Python: from safetensors.torch "
                          "import save_file; save_file(torch.load(PATH, map_location='cpu'), 'weights.safetensors')");
  }
  if (value.isGenericDict() && value.toGenericDict().contains("ema")) value = value.toGenericDict().at("ema");
  if (!value.isGenericDict()) throw CheckpointError(path + ": expected a dict of {name: tensor}, found " + value.tagKind());
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString() || !entry.value().isTensor())
      throw CheckpointError(path + ": expected a dict of {name: tensor}, found an entry of " + entry.key().tagKind() +
                            " -> " + entry.value().tagKind());
    weights[entry.key().toStringRef()] = entry.value().toTensor();
  }
  return weights;
}

nlohmann::json read_json(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw CheckpointError(path + ": " + what + " not found");
  try {
    nlohmann::json json = nlohmann::json::parse(in);
    if (!json.is_object()) throw CheckpointError(path + ": not a diffusers " + what + " (expected a JSON object)");
    return json;
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(path + ": not a diffusers " + what + " (" + e.what() + ")");
  }
}

std::string format_description(ImportSource source) {
  switch (source) {
    case ImportSource::dit_official: return "a DiT state dict of the DiT repository";
    case ImportSource::diffusers_dit: return "a diffusers DiTTransformer2DModel";
    case ImportSource::diffusers_unet2d: return "a diffusers UNet2DModel";
    case ImportSource::diffusers_vae: return "a diffusers AutoencoderKL";
  }
  return "";
}

}  // namespace

ImportInput read_import_input(const ImportOptions& o) {
  ImportInput input;
  input.source = enum_name(o.source, kImportSourceNames);
  input.what = format_description(o.source);
  // A diffusers model folder holds its weights and config.json; a pipeline folder holds it
  // next to scheduler/.
  const bool folder = fs::is_directory(o.weights);
  input.weights_path = folder ? (fs::path(o.weights) / "diffusion_pytorch_model.safetensors").string() : o.weights;
  input.weights = read_state_dict(input.weights_path);
  input.config_path = !o.config.empty() ? o.config : folder ? (fs::path(o.weights) / "config.json").string() : "";
  if (!input.config_path.empty()) input.config = read_json(input.config_path, "config.json");
  fs::path model_folder = fs::path(o.weights).lexically_normal();
  if (model_folder.filename().empty()) model_folder = model_folder.parent_path();  // "pipeline/unet/"
  const fs::path pipeline_scheduler = model_folder.parent_path() / "scheduler" / "scheduler_config.json";
  input.scheduler_path = !o.scheduler.empty()                               ? o.scheduler
                         : folder && fs::is_regular_file(pipeline_scheduler) ? pipeline_scheduler.string()
                                                                             : "";
  if (!input.scheduler_path.empty()) input.scheduler = read_json(input.scheduler_path, "scheduler_config.json");
  return input;
}

const torch::Tensor& require_tensor(const ImportInput& input, const std::string& name, int64_t dims) {
  const auto it = input.weights.find(name);
  if (it == input.weights.end())
    throw CheckpointError(input.weights_path + ": no '" + name + "' tensor: not " + input.what);
  if (it->second.dim() != dims)
    throw CheckpointError(input.weights_path + ": '" + name + "' has shape " + shape_text(it->second.sizes()) +
                          ", expected " + std::to_string(dims) + " dimensions");
  return it->second;
}

void require_config_setting(const ImportInput& input, const std::string& key, const nlohmann::json& supported) {
  const auto it = input.config.find(key);
  if (it == input.config.end() || it->is_null() || *it == supported) return;
  throw CheckpointError(input.config_path + ": " + key + " " + it->dump() + " is not supported by the " + input.source +
                        " importer (only " + supported.dump() + ")");
}

void require_config(const ImportInput& input, const std::string& needed) {
  if (input.config_path.empty())
    throw CheckpointError(input.weights_path + ": " + input.source + " needs the model's config.json (" + needed +
                          " are not in the weights): pass the model folder as --weights, or --config");
}

void copy_mapped(torch::nn::Module& net, const StateDict& weights, const ImportInput& input,
                 const std::function<std::string(const std::string&)>& source_name) {
  torch::NoGradGuard no_grad;
  const std::string& path = input.weights_path;
  std::set<std::string> used;
  const auto copy = [&](const std::string& ours, const torch::Tensor& target) {
    const std::string name = source_name(ours);
    const auto it = weights.find(name);
    if (it == weights.end())
      throw CheckpointError(path + ": " + input.source + " weights lack '" + name + "' (shape " +
                            shape_text(target.sizes()) + ")");
    if (it->second.sizes() != target.sizes())
      throw CheckpointError(path + ": " + input.source + " weight '" + name + "' has shape " +
                            shape_text(it->second.sizes()) + ", expected " + shape_text(target.sizes()));
    target.copy_(it->second.to(target.scalar_type()));
    used.insert(name);
  };
  for (const auto& p : net.named_parameters(true)) copy(p.key(), p.value());
  for (const auto& b : net.named_buffers(true)) copy(b.key(), b.value());
  for (const auto& [name, tensor] : weights)
    if (!used.count(name))
      throw CheckpointError(path + ": " + input.source + " weight '" + name + "' " + shape_text(tensor.sizes()) +
                            " has no place in the model found (" + std::to_string(used.size()) + " of " +
                            std::to_string(weights.size()) + " tensors mapped)");
}

StateDict with_current_attention_names(StateDict weights) {
  const std::pair<const char*, const char*> renames[] = {
      {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
  StateDict renamed;
  for (auto& [name, tensor] : weights) {
    std::string key = name;
    for (const auto& [from, to] : renames) {
      const auto pos = key.find(from);
      if (key.find(".attentions.") != std::string::npos && pos != std::string::npos) key.replace(pos, std::strlen(from), to);
    }
    // The LDM form stores the attention projections as 1×1 convolutions.
    const bool projection = key.find(".attentions.") != std::string::npos && tensor.dim() == 4 &&
                            tensor.size(2) == 1 && tensor.size(3) == 1;
    renamed[key] = projection ? tensor.flatten(1) : tensor;
  }
  return renamed;
}

StateDict with_fused_qkv(StateDict weights, const ImportInput& input, bool conv) {
  const auto as_conv = [conv](const torch::Tensor& t) {
    return conv && t.dim() == 2 ? t.reshape({t.size(0), t.size(1), 1, 1}) : t;
  };
  std::vector<std::string> prefixes;
  for (const auto& entry : weights) {
    const std::string& name = entry.first;
    const std::string suffix = "to_q.weight";
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      prefixes.push_back(name.substr(0, name.size() - suffix.size()));
  }
  for (const std::string& prefix : prefixes) {
    for (const char* kind : {"weight", "bias"}) {
      std::vector<torch::Tensor> parts;
      for (const char* projection : {"to_q.", "to_k.", "to_v."}) {
        const std::string name = prefix + projection + kind;
        const auto it = weights.find(name);
        if (it == weights.end()) {
          if (std::strcmp(kind, "bias") == 0 && parts.empty()) break;  // an attention without biases
          throw CheckpointError(input.weights_path + ": " + input.source + " weights lack '" + name + "'");
        }
        parts.push_back(it->second);
        weights.erase(it);
      }
      if (!parts.empty()) weights[prefix + "to_qkv." + kind] = as_conv(torch::cat(parts, 0));
    }
    const auto out = weights.find(prefix + "to_out.0.weight");
    if (out != weights.end()) out->second = as_conv(out->second);
  }
  return weights;
}

int count_prefixed(const StateDict& weights, const std::string& prefix, const std::string& suffix) {
  int n = 0;
  while (weights.count(prefix + std::to_string(n) + suffix)) ++n;
  return n;
}

DiffusionOptions pipeline_diffusion(const ImportInput& input) {
  const auto& json = input.scheduler;
  const std::string& path = input.scheduler_path;
  DiffusionOptions d;
  d.timesteps = json_value(json, path, "num_train_timesteps", 1000);
  d.beta_start = json_value(json, path, "beta_start", 0.0001);
  d.beta_end = json_value(json, path, "beta_end", 0.02);
  const auto schedule = json_value<std::string>(json, path, "beta_schedule", "linear");
  if (schedule == "linear") {
    d.schedule = ScheduleKind::vp_linear;
  } else if (schedule == "squaredcos_cap_v2") {  // Nichol & Dhariwal 2021 eq. 17, s = 0.008, β ≤ 0.999
    d.schedule = ScheduleKind::vp_cosine;
  } else {
    throw CheckpointError(path + ": beta_schedule '" + schedule +
                          "' is not supported (linear and squaredcos_cap_v2 are: diffuse's vp_linear and vp_cosine)");
  }
  if (json.contains("trained_betas") && !json["trained_betas"].is_null())
    throw CheckpointError(path + ": trained_betas is not supported (only a linear or squaredcos_cap_v2 beta_schedule)");
  const auto prediction = json_value<std::string>(json, path, "prediction_type", "epsilon");
  if (prediction == "epsilon") {
    d.prediction = Prediction::eps;
  } else if (prediction == "v_prediction") {
    d.prediction = Prediction::v;
  } else if (prediction == "sample") {
    d.prediction = Prediction::x0;
  } else {
    throw CheckpointError(path + ": prediction_type '" + prediction + "' is not supported (epsilon, v_prediction, sample)");
  }
  return d;
}

ImportSummary write_imported_model(const std::string& out, DiffusionNet& net, const ExperimentConfig& config,
                                   std::string description) {
  std::vector<std::string> class_names;
  for (int k = 0; k < config.model.num_classes; ++k) class_names.push_back(std::to_string(k));
  ImportSummary summary;
  summary.written = write_exported_model(out, net, config, 0, "ema", class_names);
  summary.description = std::move(description);
  return summary;
}

}  // namespace diffuse::interop
