#include "diffuse/interop/weight_import.h"

#include <nlohmann/json.hpp>

#include "diffuse/core/error.h"
#include "diffuse/core/text.h"
#include "diffuse/io/safetensors.h"
#include "import_support.h"

namespace diffuse {
namespace interop {
namespace {

// diffusers' AutoencoderKL names are ours. Older diffusers files (and the converted LDM
// checkpoints, sd-vae-ft-ema among them) name the attention query/key/value/proj_attn; those
// names are read too (with_current_attention_names).
std::string diffusers_vae_name(const std::string& ours) { return ours; }

// Options from the shapes, then from diffusers' config.json where one is given (it alone
// knows norm_num_groups and scaling_factor: defaults 32 and 0.18215, those of the SD VAE).
AutoencoderKLOptions diffusers_vae_options(const ImportInput& input, const StateDict& weights) {
  AutoencoderKLOptions o;
  o.in_channels = static_cast<int>(require_tensor(input, "encoder.conv_in.weight", 4).size(1));
  o.out_channels = static_cast<int>(require_tensor(input, "decoder.conv_out.weight", 4).size(0));
  o.latent_channels = static_cast<int>(require_tensor(input, "decoder.conv_in.weight", 4).size(1));
  o.block_out_channels.clear();
  const int levels = count_prefixed(weights, "encoder.down_blocks.", ".resnets.0.conv1.weight");
  for (int i = 0; i < levels; ++i)
    o.block_out_channels.push_back(static_cast<int>(
        weights.at("encoder.down_blocks." + std::to_string(i) + ".resnets.0.conv1.weight").size(0)));
  o.layers_per_block = count_prefixed(weights, "encoder.down_blocks.0.resnets.", ".conv1.weight");
  o.norm_num_groups = config_value(input, "norm_num_groups", o.norm_num_groups);
  o.scaling_factor = config_value(input, "scaling_factor", o.scaling_factor);
  if (config_value(input, "shift_factor", 0.0) != 0.0)
    throw CheckpointError(input.config_path + ": shift_factor " + input.config["shift_factor"].dump() +
                          " is not supported (the SD 1.x/2.x VAE has none)");
  require_config_setting(input, "use_quant_conv", true);
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

ImportSummary import_diffusers_vae(const ImportInput& input, const ImportOptions& options) {
  const StateDict renamed = with_current_attention_names(input.weights);
  const AutoencoderKLOptions o = diffusers_vae_options(input, renamed);
  AutoencoderKL vae(o);
  copy_mapped(*vae, renamed, input, diffusers_vae_name);
  ImportSummary summary;
  summary.written.tensors = static_cast<int64_t>(renamed.size());
  summary.written.bytes = static_cast<int64_t>(write_vae(options.out, vae));
  summary.description = "AutoencoderKL, channels [" + join(o.block_out_channels, ", ") + "], " + std::to_string(o.layers_per_block) +
                        " resnets per block, " + std::to_string(o.latent_channels) + " latent channels (÷" +
                        std::to_string(vae->downsampling()) + "), scaling factor " + format_double(o.scaling_factor);
  return summary;
}

}  // namespace interop

ImportSummary import_weights(const ImportOptions& o) {
  if (!is_safetensors_path(o.out))
    throw ConfigError("import: the output must be a .safetensors file, found '" + o.out + "'");
  const interop::ImportInput input = interop::read_import_input(o);
  switch (o.source) {
    case ImportSource::dit_official: return interop::import_dit_official(input, o);
    case ImportSource::diffusers_dit: return interop::import_diffusers_dit(input, o);
    case ImportSource::diffusers_unet2d: return interop::import_diffusers_unet2d(input, o);
    case ImportSource::diffusers_vae: return interop::import_diffusers_vae(input, o);
  }
  throw ConfigError("import: unknown source format");
}

uint64_t write_vae(const std::string& path, AutoencoderKL& vae) {
  SafetensorsContents file;
  file.tensors = module_tensors(*vae);
  file.metadata = {{"format", interop::kVaeFormat}, {"vae", interop::vae_options_json(vae->options()).dump()}};
  return write_safetensors(path, file);
}

AutoencoderKL load_vae(const std::string& path, torch::Device device) {
  const SafetensorsContents file = read_safetensors(path);
  const auto format = file.metadata.find("format");
  if (format == file.metadata.end() || format->second != interop::kVaeFormat)
    throw CheckpointError(path + ": not a VAE file of diffuse (no '" + std::string(interop::kVaeFormat) +
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
  interop::ImportInput input;
  input.source = "vae";
  input.weights_path = path;
  interop::copy_mapped(*vae, file.tensor_map(), input, interop::diffusers_vae_name);
  vae->to(device);
  vae->eval();
  return vae;
}

}  // namespace diffuse
