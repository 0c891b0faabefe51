// diffusers' UNet2DModel (the network of its DDPM pipelines, e.g. google/ddpm-cifar10-32)
// onto our UNet. Both are the DDPM/ADM UNet (Ho et al. 2020 App. B): conv_in, per level
// layers_per_block ResNet blocks (with attention in the Attn* blocks) and a strided-conv
// downsampler, a ResNet-attention-ResNet middle, a mirrored decoder of layers_per_block + 1
// blocks over the concatenated skips with nearest ×2 + conv upsamplers, GroupNorm-SiLU-conv
// out. Where the two differ, config.json selects our option: timestep features
// (flip_sin_to_cos, freq_shift), GroupNorm ε (norm_eps), downsample padding, heads
// (attention_head_dim) and the time-embedding injection (resnet_time_scale_shift).
#include <string>
#include <vector>

#include "diffuse/core/text.h"
#include "diffuse/models/registry.h"
#include "import_support.h"

namespace diffuse::interop {
namespace {

// Our parts of a residual block and an attention layer, with diffusers' names.
constexpr std::pair<const char*, const char*> kResnetParts[] = {
    {"in_norm.", "norm1."},   {"in_conv.", "conv1."},   {"emb_proj.", "time_emb_proj."},
    {"out_norm.", "norm2."}, {"out_conv.", "conv2."}, {"skip.", "conv_shortcut."},
};
constexpr std::pair<const char*, const char*> kAttentionParts[] = {
    {"norm.", "group_norm."}, {"qkv.", "to_qkv."}, {"proj.", "to_out.0."},
};

template <size_t N>
std::string renamed_part(std::string rest, const std::pair<const char*, const char*> (&parts)[N]) {
  for (const auto& [from, to] : parts)
    if (replace_prefix(rest, from, to)) break;
  return rest;
}

// One entry of our input_blocks/output_blocks (`rest` after its index) inside diffusers'
// block `container` ("down_blocks.L." or "up_blocks.U."), as its `i`-th layer.
std::string block_name(const std::string& rest, const std::string& container, int i, bool down) {
  std::string part = rest;
  if (replace_prefix(part, "res.", "")) return container + "resnets." + std::to_string(i) + "." + renamed_part(part, kResnetParts);
  if (replace_prefix(part, "attention.", ""))
    return container + "attentions." + std::to_string(i) + "." + renamed_part(part, kAttentionParts);
  if (replace_prefix(part, "resample.", "")) return container + (down ? "downsamplers.0." : "upsamplers.0.") + part;
  return container + rest;
}

// Our name → diffusers' name, for a UNet of `per_level` = layers_per_block ResNet blocks a
// level: our encoder lists per level its blocks then the downsampler (layers_per_block + 1
// entries), our decoder per level layers_per_block + 1 blocks, the last of which upsamples.
std::string unet2d_name(const std::string& ours, int per_level) {
  static const std::pair<const char*, const char*> top[] = {
      {"time_embed_in.", "time_embedding.linear_1."}, {"time_embed_out.", "time_embedding.linear_2."},
      {"input_conv.", "conv_in."}, {"out_norm.", "conv_norm_out."}, {"out_conv.", "conv_out."}};
  std::string name = ours;
  for (const auto& [from, to] : top)
    if (replace_prefix(name, from, to)) return name;
  if (replace_prefix(name, "middle_in.", "")) return "mid_block.resnets.0." + renamed_part(name, kResnetParts);
  if (replace_prefix(name, "middle_out.", "")) return "mid_block.resnets.1." + renamed_part(name, kResnetParts);
  if (replace_prefix(name, "middle_attention.", "")) return "mid_block.attentions.0." + renamed_part(name, kAttentionParts);
  const bool down = replace_prefix(name, "input_blocks.", "");
  if (!down && !replace_prefix(name, "output_blocks.", "")) return ours;
  const auto dot = name.find('.');
  const int index = std::stoi(name.substr(0, dot));
  const int stride = per_level + 1;
  const std::string container = (down ? "down_blocks." : "up_blocks.") + std::to_string(index / stride) + ".";
  return block_name(name.substr(dot + 1), container, index % stride, down);
}

void require_block_types(const ImportInput& input, const std::string& key, const std::vector<std::string>& supported) {
  for (const auto& type : config_value(input, key, supported)) {
    bool known = false;
    for (const auto& s : supported) known = known || type == s;
    if (!known)
      throw CheckpointError(input.config_path + ": " + key + " has '" + type + "', which the " + input.source +
                            " importer does not cover (only " + supported[0] + " and " + supported[1] + ")");
  }
}

// The settings of config.json that our UNet has no option for must hold diffusers' defaults.
void require_unet2d_settings(const ImportInput& input) {
  require_config(input, "sample_size, the timestep features and the GroupNorm ε");
  require_config_setting(input, "time_embedding_type", "positional");
  require_config_setting(input, "center_input_sample", false);
  require_config_setting(input, "act_fn", "silu");
  require_config_setting(input, "class_embed_type", nullptr);
  require_config_setting(input, "num_class_embeds", nullptr);
  require_config_setting(input, "add_attention", true);
  require_config_setting(input, "mid_block_scale_factor", 1);
  require_config_setting(input, "downsample_type", "conv");
  require_config_setting(input, "upsample_type", "conv");
  require_block_types(input, "down_block_types", {"DownBlock2D", "AttnDownBlock2D"});
  require_block_types(input, "up_block_types", {"UpBlock2D", "AttnUpBlock2D"});
}

// in_channels, learn_sigma and base_channels from conv_in and conv_out.
void read_unet2d_channels(const ImportInput& input, ModelOptions& m) {
  const auto& conv_in = require_tensor(input, "conv_in.weight", 4);  // [base, C, 3, 3]
  const auto& conv_out = require_tensor(input, "conv_out.weight", 4);
  m.in_channels = static_cast<int>(conv_in.size(1));
  m.learn_sigma = conv_out.size(0) == 2 * conv_in.size(1);
  if (!m.learn_sigma && conv_out.size(0) != conv_in.size(1))
    throw CheckpointError(input.weights_path + ": conv_out has " + std::to_string(conv_out.size(0)) +
                          " channels for " + std::to_string(m.in_channels) +
                          " in; diffuse's UNet outputs in_channels (or twice that, learned variance)");
  m.unet.base_channels = static_cast<int>(conv_in.size(0));
}

// config.json's sample_size as one side length, 0 when it is none (not square, missing).
int unet2d_image_size(const nlohmann::json& sample) {
  return sample.is_number_integer() ? sample.get<int>()
         : sample.is_array() && sample.size() == 2 && sample[0] == sample[1] && sample[0].is_number_integer()
             ? sample[0].get<int>()
             : 0;
}

// channel_mult and attention_resolutions from the down blocks of an `image_size` input;
// returns the width of each level.
std::vector<int> read_unet2d_levels(const ImportInput& input, const StateDict& weights, int levels, int image_size,
                                    UNetOptions& u) {
  u.channel_mult.clear();
  u.attention_resolutions.clear();
  std::vector<int> widths;
  int size = image_size;
  for (int level = 0; level < levels; ++level) {
    const std::string down = "down_blocks." + std::to_string(level) + ".";
    const int width = static_cast<int>(weights.at(down + "resnets.0.conv1.weight").size(0));
    if (width % u.base_channels != 0)
      throw CheckpointError(input.weights_path + ": '" + down + "resnets.0.conv1.weight' has " + std::to_string(width) +
                            " channels, not a multiple of conv_in's " + std::to_string(u.base_channels));
    widths.push_back(width);
    u.channel_mult.push_back(width / u.base_channels);
    const bool attention = weights.count(down + "attentions.0.to_qkv.weight") > 0;
    const std::string up = "up_blocks." + std::to_string(levels - 1 - level) + ".attentions.0.to_qkv.weight";
    if (attention != (weights.count(up) > 0))
      throw CheckpointError(input.weights_path + ": level " + std::to_string(level) + " has attention in " +
                            (attention ? "its down block but not in '" + up + "'" : "'" + up + "' but not in its down block") +
                            "; diffuse's UNet puts attention at the same feature-map sizes on both sides");
    if (attention) u.attention_resolutions.push_back(size);
    size = (size + 1) / 2;
  }
  return widths;
}

// GroupNorm, heads, time-embedding injection and downsampling from config.json.
void read_unet2d_block_options(const ImportInput& input, const StateDict& weights, UNetOptions& u) {
  u.num_groups = config_value(input, "norm_num_groups", 32);
  require_config_setting(input, "attn_norm_num_groups", u.num_groups);
  u.norm_eps = config_value(input, "norm_eps", 1e-5);
  // attention_head_dim: channels a head (diffusers' default 8); null gives one head everywhere.
  const auto head_dim = input.config.find("attention_head_dim");
  if (head_dim != input.config.end() && head_dim->is_null()) {
    u.num_heads = 1;
    u.head_channels = -1;
  } else {
    u.head_channels = config_value(input, "attention_head_dim", 8);
  }
  const auto time_shift = config_value<std::string>(input, "resnet_time_scale_shift", "default");
  if (time_shift != "default" && time_shift != "scale_shift")
    throw CheckpointError(input.config_path + ": resnet_time_scale_shift '" + time_shift +
                          "' is not supported (default or scale_shift)");
  u.scale_shift_norm = time_shift == "scale_shift";
  // UNetMidBlock2D: attn_groups defaults to resnet_groups under "default" conditioning only.
  u.middle_attention_norm = weights.count("mid_block.attentions.0.group_norm.weight") > 0;
  u.resblock_updown = false;
  u.dropout = 0.0;
  const int padding = config_value(input, "downsample_padding", 1);
  if (padding != 0 && padding != 1)
    throw CheckpointError(input.config_path + ": downsample_padding " + std::to_string(padding) + " is not supported (1 or 0)");
  u.downsample_padding = padding == 1 ? DownsamplePadding::symmetric : DownsamplePadding::bottom_right;
}

void read_unet2d_timestep(const ImportInput& input, TimestepFeatures& timestep) {
  timestep.order = config_value(input, "flip_sin_to_cos", true) ? TimestepOrder::cos_sin : TimestepOrder::sin_cos;
  timestep.freq_shift = config_value(input, "freq_shift", 0);
  if (timestep.freq_shift != 0 && timestep.freq_shift != 1)
    throw CheckpointError(input.config_path + ": freq_shift " + std::to_string(timestep.freq_shift) +
                          " is not supported (0 or 1)");
}

std::string unet2d_description(const ExperimentConfig& c, const std::vector<int>& widths) {
  const auto& m = c.model;
  const auto& u = m.unet;
  return "UNet2DModel, channels [" + join(widths, ", ") + "], " + std::to_string(u.num_res_blocks) +
         " resnets per level, attention at [" + join(u.attention_resolutions, ", ") + "] px, " + std::to_string(m.in_channels) + "×" +
         std::to_string(m.image_size) + "×" + std::to_string(m.image_size) + " inputs" +
         (m.learn_sigma ? ", learned variance" : "") + ", " + enum_name(c.diffusion.schedule, kScheduleKindNames) + " " +
         std::to_string(c.diffusion.timesteps) + " steps, " + enum_name(c.diffusion.prediction, kPredictionNames) +
         " prediction";
}

}  // namespace

ImportSummary import_diffusers_unet2d(const ImportInput& input, const ImportOptions& options) {
  require_unet2d_settings(input);

  ExperimentConfig c;
  auto& m = c.model;
  auto& u = m.unet;
  m.arch = ModelArch::unet;
  m.num_classes = 0;
  read_unet2d_channels(input, m);
  const StateDict weights = with_fused_qkv(with_current_attention_names(input.weights), input, /*conv=*/true);
  const int levels = count_prefixed(weights, "down_blocks.", ".resnets.0.conv1.weight");
  u.num_res_blocks = count_prefixed(weights, "down_blocks.0.resnets.", ".conv1.weight");
  if (levels == 0 || u.num_res_blocks == 0)
    throw CheckpointError(input.weights_path + ": no 'down_blocks.0.resnets.0.conv1.weight' tensor: not " + input.what);

  const nlohmann::json sample = input.config.value("sample_size", nlohmann::json());
  m.image_size = unet2d_image_size(sample);
  if (m.image_size < 1)
    throw CheckpointError(input.config_path + ": sample_size " + sample.dump() + " is not one side length (square images)");
  const std::vector<int> widths = read_unet2d_levels(input, weights, levels, m.image_size, u);
  read_unet2d_block_options(input, weights, u);
  read_unet2d_timestep(input, m.timestep);
  c.diffusion = pipeline_diffusion(input);
  c.data.type = DatasetType::image_folder;
  c.data.resolution = m.image_size;
  if (m.in_channels == 1 || m.in_channels == 3) c.data.channels = m.in_channels;

  const auto net = make_model(m);
  copy_mapped(*net, weights, input, [&](const std::string& ours) { return unet2d_name(ours, u.num_res_blocks); });
  return write_imported_model(options.out, *net, c, unet2d_description(c, widths));
}

}  // namespace diffuse::interop
