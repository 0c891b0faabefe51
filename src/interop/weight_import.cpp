#include "diffuse/interop/weight_import.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "diffuse/core/error.h"
#include "diffuse/io/safetensors.h"
#include "diffuse/models/registry.h"

namespace diffuse {
namespace {

using StateDict = std::map<std::string, torch::Tensor>;

std::string shape_of(const torch::Tensor& t) {
  std::string text = "[";
  for (int64_t d = 0; d < t.dim(); ++d) text += (d ? ", " : "") + std::to_string(t.size(d));
  return text + "]";
}

// A state dict from a safetensors file or a torch.save file of {name: tensor} (a training
// checkpoint's "ema" entry when it holds one, as the DiT repository's do).
StateDict read_state_dict(const std::string& path) {
  namespace fs = std::filesystem;
  StateDict weights;
  if (is_safetensors_path(path)) {
    for (const auto& [name, tensor] : read_safetensors(path).tensors) weights[name] = tensor;
    return weights;
  }
  if (!fs::is_regular_file(path)) throw CheckpointError(path + ": weights file not found");
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    // LibTorch's unpickler reads a Python OrderedDict (what state_dict() returns) only from
    // 2.6 on (pytorch/pytorch#139750); safetensors needs no unpickler at all.
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

const torch::Tensor& require(const StateDict& weights, const std::string& path, const std::string& name, int64_t dims) {
  const auto it = weights.find(name);
  if (it == weights.end()) throw CheckpointError(path + ": no '" + name + "' tensor: not a DiT state dict of the DiT repository");
  if (it->second.dim() != dims)
    throw CheckpointError(path + ": '" + name + "' has shape " + shape_of(it->second) + ", expected " +
                          std::to_string(dims) + " dimensions");
  return it->second;
}

// DiT of Peebles & Xie (github.com/facebookresearch/DiT, models.py): our DiT follows it layer
// for layer (adaLN-Zero, LayerNorm ε 1e-6, tanh GELU, [cos | sin] timestep features, fixed
// 2-D sin-cos positions, the same unpatchify order), so only names differ. Its timestep input
// is the DDPM step t, as ours for VP schedules; its schedule is linear β over 1000 steps.
std::string dit_official_name(const std::string& ours) {
  std::string name = ours;
  const auto replace = [&](const std::string& from, const std::string& to) {
    const auto pos = name.find(from);
    if (pos != std::string::npos) name.replace(pos, from.size(), to);
  };
  if (name.rfind("x_embedder.", 0) == 0) replace("x_embedder.", "x_embedder.proj.");
  replace("y_embedder.weight", "y_embedder.embedding_table.weight");
  if (name.rfind("blocks.", 0) == 0) {
    replace(".mlp.0.", ".mlp.fc1.");
    replace(".mlp.2.", ".mlp.fc2.");
  }
  replace("adaln_modulation", "adaLN_modulation");
  return name;
}

ExperimentConfig dit_official_config(const StateDict& weights, const std::string& path, std::string& description) {
  const auto& patch = require(weights, path, "x_embedder.proj.weight", 4);  // [D, C, p, p]
  const auto& positions = require(weights, path, "pos_embed", 3);          // [1, N, D]
  const auto& linear = require(weights, path, "final_layer.linear.weight", 2);
  const auto& fc1 = require(weights, path, "blocks.0.mlp.fc1.weight", 2);
  ExperimentConfig c;
  auto& m = c.model;
  m.arch = ModelArch::dit;
  m.dit.hidden_size = static_cast<int>(patch.size(0));
  m.in_channels = static_cast<int>(patch.size(1));
  m.dit.patch_size = static_cast<int>(patch.size(2));
  const auto grid = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(positions.size(1)))));
  if (grid * grid != positions.size(1))
    throw CheckpointError(path + ": pos_embed has " + std::to_string(positions.size(1)) + " tokens, not a square grid");
  m.image_size = static_cast<int>(grid) * m.dit.patch_size;
  // Every DiT model of the paper has 64 channels per head (S/6, B/12, L/16, XL/16).
  m.dit.num_heads = std::max(1, m.dit.hidden_size / 64);
  m.dit.mlp_ratio = static_cast<double>(fc1.size(0)) / m.dit.hidden_size;
  int depth = 0;
  while (weights.count("blocks." + std::to_string(depth) + ".attn.qkv.weight")) ++depth;
  m.dit.depth = depth;
  const int64_t per_patch = m.dit.patch_size * m.dit.patch_size;
  m.learn_sigma = linear.size(0) == 2 * per_patch * m.in_channels;
  // The label table has a null row when the model was trained with label dropout (always, in the paper).
  const auto table = weights.find("y_embedder.embedding_table.weight");
  m.num_classes = table == weights.end() ? 0 : static_cast<int>(table->second.size(0)) - 1;
  c.diffusion.schedule = ScheduleKind::vp_linear;
  c.diffusion.timesteps = 1000;
  c.diffusion.prediction = Prediction::eps;
  c.diffusion.p_uncond = m.num_classes > 0 ? 0.1 : 0.0;
  c.data.type = DatasetType::latents;
  description = "DiT depth " + std::to_string(depth) + ", hidden " + std::to_string(m.dit.hidden_size) + ", " +
                std::to_string(m.dit.num_heads) + " heads, patch " + std::to_string(m.dit.patch_size) + ", " +
                std::to_string(m.in_channels) + "×" + std::to_string(m.image_size) + "×" + std::to_string(m.image_size) +
                " inputs, " + std::to_string(m.num_classes) + " classes" + (m.learn_sigma ? ", learned variance" : "");
  return c;
}

// Copies every parameter and buffer of `net` from `weights` under its source name; a
// missing, misshapen or unused source tensor is named as the source names it.
void copy_mapped(DiffusionNet& net, const StateDict& weights, const std::string& path, const std::string& source,
                 std::string (*source_name)(const std::string&)) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  const auto copy = [&](const std::string& ours, const torch::Tensor& target) {
    const std::string name = source_name(ours);
    const auto it = weights.find(name);
    if (it == weights.end())
      throw CheckpointError(path + ": " + source + " weights lack '" + name + "' (shape " + shape_of(target) + ")");
    if (it->second.sizes() != target.sizes())
      throw CheckpointError(path + ": " + source + " weight '" + name + "' has shape " + shape_of(it->second) +
                            ", expected " + shape_of(target));
    target.copy_(it->second.to(target.scalar_type()));
    used.insert(name);
  };
  for (const auto& p : net.named_parameters(true)) copy(p.key(), p.value());
  for (const auto& b : net.named_buffers(true)) copy(b.key(), b.value());
  for (const auto& [name, tensor] : weights)
    if (!used.count(name))
      throw CheckpointError(path + ": " + source + " weight '" + name + "' " + shape_of(tensor) +
                            " has no place in the model found (" + std::to_string(used.size()) + " of " +
                            std::to_string(weights.size()) + " tensors mapped)");
}

}  // namespace

ImportSummary import_weights(const ImportOptions& o) {
  if (!is_safetensors_path(o.out))
    throw ConfigError("import: the output must be a .safetensors file, found '" + o.out + "'");
  const StateDict weights = read_state_dict(o.weights);
  ImportSummary summary;
  ExperimentConfig config;
  std::string (*source_name)(const std::string&) = nullptr;
  switch (o.source) {
    case ImportSource::dit_official:
      config = dit_official_config(weights, o.weights, summary.description);
      source_name = dit_official_name;
      break;
  }
  const auto net = make_model(config.model);
  copy_mapped(*net, weights, o.weights, enum_name(o.source, kImportSourceNames), source_name);
  std::vector<std::string> class_names;
  for (int k = 0; k < config.model.num_classes; ++k) class_names.push_back(std::to_string(k));
  summary.written = write_exported_model(o.out, *net, config, 0, "ema", class_names);
  return summary;
}

}  // namespace diffuse
