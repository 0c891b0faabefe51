#include "diffuse/interop/weight_import.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "diffuse/core/error.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/io/safetensors.h"
#include "diffuse/models/registry.h"

namespace diffuse {
namespace {

using StateDict = std::map<std::string, torch::Tensor>;

// A state dict from a safetensors file or a torch.save file of {name: tensor} (a training
// checkpoint's "ema" entry when it holds one, as the DiT repository's do).
StateDict read_state_dict(const std::string& path) {
  namespace fs = std::filesystem;
  StateDict weights;
  if (is_safetensors_path(path)) return read_safetensors(path).tensor_map();
  if (!fs::is_regular_file(path)) throw CheckpointError(path + ": weights file not found");
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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

const torch::Tensor& require(const StateDict& weights, const std::string& path, const std::string& name, int64_t dims) {
  const auto it = weights.find(name);
  if (it == weights.end()) throw CheckpointError(path + ": no '" + name + "' tensor: not a DiT state dict of the DiT repository");
  if (it->second.dim() != dims)
    throw CheckpointError(path + ": '" + name + "' has shape " + shape_text(it->second.sizes()) + ", expected " +
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
void copy_mapped(torch::nn::Module& net, const StateDict& weights, const std::string& path, const std::string& source,
                 std::string (*source_name)(const std::string&)) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  const auto copy = [&](const std::string& ours, const torch::Tensor& target) {
    const std::string name = source_name(ours);
    const auto it = weights.find(name);
    if (it == weights.end())
      throw CheckpointError(path + ": " + source + " weights lack '" + name + "' (shape " + shape_text(target.sizes()) + ")");
    if (it->second.sizes() != target.sizes())
      throw CheckpointError(path + ": " + source + " weight '" + name + "' has shape " + shape_text(it->second.sizes()) +
                            ", expected " + shape_text(target.sizes()));
    target.copy_(it->second.to(target.scalar_type()));
    used.insert(name);
  };
  for (const auto& p : net.named_parameters(true)) copy(p.key(), p.value());
  for (const auto& b : net.named_buffers(true)) copy(b.key(), b.value());
  for (const auto& [name, tensor] : weights)
    if (!used.count(name))
      throw CheckpointError(path + ": " + source + " weight '" + name + "' " + shape_text(tensor.sizes()) +
                            " has no place in the model found (" + std::to_string(used.size()) + " of " +
                            std::to_string(weights.size()) + " tensors mapped)");
}

// diffusers' AutoencoderKL names are ours. Older diffusers files (and the converted LDM
// checkpoints, sd-vae-ft-ema among them) name the attention query/key/value/proj_attn; those
// names are read too.
std::string diffusers_vae_name(const std::string& ours) { return ours; }

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

int count_prefixed(const StateDict& weights, const std::string& prefix, const std::string& suffix) {
  int n = 0;
  while (weights.count(prefix + std::to_string(n) + suffix)) ++n;
  return n;
}

// Options from the shapes, then from diffusers' config.json where one is given (it alone
// knows norm_num_groups and scaling_factor: defaults 32 and 0.18215, those of the SD VAE).
AutoencoderKLOptions diffusers_vae_options(const StateDict& weights, const std::string& path, const std::string& config) {
  AutoencoderKLOptions o;
  o.in_channels = static_cast<int>(require(weights, path, "encoder.conv_in.weight", 4).size(1));
  o.out_channels = static_cast<int>(require(weights, path, "decoder.conv_out.weight", 4).size(0));
  o.latent_channels = static_cast<int>(require(weights, path, "decoder.conv_in.weight", 4).size(1));
  o.block_out_channels.clear();
  const int levels = count_prefixed(weights, "encoder.down_blocks.", ".resnets.0.conv1.weight");
  for (int i = 0; i < levels; ++i)
    o.block_out_channels.push_back(static_cast<int>(
        weights.at("encoder.down_blocks." + std::to_string(i) + ".resnets.0.conv1.weight").size(0)));
  o.layers_per_block = count_prefixed(weights, "encoder.down_blocks.0.resnets.", ".conv1.weight");
  if (config.empty()) return o;
  std::ifstream in(config);
  if (!in) throw CheckpointError(config + ": config file not found");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
    if (json.contains("norm_num_groups")) o.norm_num_groups = json["norm_num_groups"].get<int>();
    if (json.contains("scaling_factor")) o.scaling_factor = json["scaling_factor"].get<double>();
    if (json.contains("shift_factor") && !json["shift_factor"].is_null() && json["shift_factor"].get<double>() != 0.0)
      throw CheckpointError(config + ": shift_factor " + json["shift_factor"].dump() +
                            " is not supported (the SD 1.x/2.x VAE has none)");
    if (json.contains("use_quant_conv") && !json["use_quant_conv"].get<bool>())
      throw CheckpointError(config + ": use_quant_conv false is not supported");
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(config + ": not a diffusers config.json (" + e.what() + ")");
  }
  return o;
}

nlohmann::json vae_options_json(const AutoencoderKLOptions& o) {
  return {{"in_channels", o.in_channels},         {"out_channels", o.out_channels},
          {"block_out_channels", o.block_out_channels}, {"layers_per_block", o.layers_per_block},
          {"latent_channels", o.latent_channels}, {"norm_num_groups", o.norm_num_groups},
          {"scaling_factor", o.scaling_factor}};
}

constexpr const char* kVaeFormat = "diffuse-vae-1";

}  // namespace

ImportSummary import_weights(const ImportOptions& o) {
  if (!is_safetensors_path(o.out))
    throw ConfigError("import: the output must be a .safetensors file, found '" + o.out + "'");
  // A diffusers model folder: its weights and config.json.
  const bool folder = std::filesystem::is_directory(o.weights);
  const std::string weights_path = folder ? (std::filesystem::path(o.weights) / "diffusion_pytorch_model.safetensors").string()
                                          : o.weights;
  const std::string config = !o.config.empty() ? o.config
                             : folder          ? (std::filesystem::path(o.weights) / "config.json").string()
                                               : "";
  const StateDict weights = read_state_dict(weights_path);
  const std::string source = enum_name(o.source, kImportSourceNames);
  ImportSummary summary;
  switch (o.source) {
    case ImportSource::dit_official: {
      const ExperimentConfig experiment = dit_official_config(weights, weights_path, summary.description);
      const auto net = make_model(experiment.model);
      copy_mapped(*net, weights, weights_path, source, dit_official_name);
      std::vector<std::string> class_names;
      for (int k = 0; k < experiment.model.num_classes; ++k) class_names.push_back(std::to_string(k));
      summary.written = write_exported_model(o.out, *net, experiment, 0, "ema", class_names);
      break;
    }
    case ImportSource::diffusers_vae: {
      const StateDict renamed = with_current_attention_names(weights);
      const AutoencoderKLOptions options = diffusers_vae_options(renamed, weights_path, config);
      AutoencoderKL vae(options);
      copy_mapped(*vae, renamed, weights_path, source, diffusers_vae_name);
      summary.written.tensors = static_cast<int64_t>(renamed.size());
      summary.written.bytes = static_cast<int64_t>(write_vae(o.out, vae));
      std::string channels;
      for (int c : options.block_out_channels) channels += (channels.empty() ? "" : ", ") + std::to_string(c);
      summary.description = "AutoencoderKL, channels [" + channels + "], " + std::to_string(options.layers_per_block) +
                            " resnets per block, " + std::to_string(options.latent_channels) +
                            " latent channels (÷" + std::to_string(vae->downsampling()) + "), scaling factor " +
                            format_double(options.scaling_factor);
      break;
    }
  }
  return summary;
}

uint64_t write_vae(const std::string& path, AutoencoderKL& vae) {
  SafetensorsContents file;
  file.tensors = module_tensors(*vae);
  file.metadata = {{"format", kVaeFormat}, {"vae", vae_options_json(vae->options()).dump()}};
  return write_safetensors(path, file);
}

AutoencoderKL load_vae(const std::string& path, torch::Device device) {
  const SafetensorsContents file = read_safetensors(path);
  const auto format = file.metadata.find("format");
  if (format == file.metadata.end() || format->second != kVaeFormat)
    throw CheckpointError(path + ": not a VAE file of diffuse (no '" + std::string(kVaeFormat) +
                          "' format in its __metadata__; convert a diffusers VAE with diffuse import --from diffusers-vae)");
  AutoencoderKLOptions o;
  try {
    const auto json = nlohmann::json::parse(file.metadata.at("vae"));
    o.in_channels = json.at("in_channels").get<int>();
    o.out_channels = json.at("out_channels").get<int>();
    o.block_out_channels = json.at("block_out_channels").get<std::vector<int>>();
    o.layers_per_block = json.at("layers_per_block").get<int>();
    o.latent_channels = json.at("latent_channels").get<int>();
    o.norm_num_groups = json.at("norm_num_groups").get<int>();
    o.scaling_factor = json.at("scaling_factor").get<double>();
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": its __metadata__ 'vae' is not the options JSON of a diffuse VAE (" + e.what() + ")");
  }
  AutoencoderKL vae(o);
  copy_mapped(*vae, file.tensor_map(), path, "vae", diffusers_vae_name);
  vae->to(device);
  vae->eval();
  return vae;
}

}  // namespace diffuse
