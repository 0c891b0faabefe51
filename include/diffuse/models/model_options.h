#pragma once
// The model: section of an experiment config (UNet, DiT or noise-conditional classifier).
// Keys, valid values and meanings are described once, by model_options_schema()
// (README.md "Config reference"); the networks validate their options against it too.
#include <array>
#include <string>
#include <vector>

#include "diffuse/core/option_schema.h"

namespace diffuse {

enum class ModelArch { unet, dit, classifier };
inline constexpr std::array<EnumName<ModelArch>, 3> kModelArchNames{{
    {"unet", ModelArch::unet},
    {"dit", ModelArch::dit},
    {"classifier", ModelArch::classifier},
}};

// Downsampling by strided 3×3 conv: padding 1 on every side (ADM), or 0 left/top and 1
// right/bottom, as DDPM's TensorFlow 'SAME' convs on even maps and diffusers'
// downsample_padding 0 do (even feature maps only).
enum class DownsamplePadding { symmetric, bottom_right };
inline constexpr std::array<EnumName<DownsamplePadding>, 2> kDownsamplePaddingNames{{
    {"symmetric", DownsamplePadding::symmetric},
    {"bottom_right", DownsamplePadding::bottom_right},
}};

struct UNetOptions {
  int base_channels = 64;
  std::vector<int> channel_mult{1, 2, 2};
  int num_res_blocks = 2;
  std::vector<int> attention_resolutions{14};  // feature-map sizes (pixels) that get attention
  int num_heads = 4;
  int head_channels = -1;  // > 0: heads = channels / head_channels (overrides num_heads)
  double dropout = 0.0;
  int num_groups = 32;
  double norm_eps = 1e-5;  // GroupNorm ε (ADM: PyTorch's default; DDPM: 1e-6)
  DownsamplePadding downsample_padding = DownsamplePadding::symmetric;
  bool scale_shift_norm = true;
  bool middle_attention_norm = true;
  bool resblock_updown = false;
};

struct DiTOptions {
  int depth = 12;
  int hidden_size = 384;
  int num_heads = 6;
  int patch_size = 2;
  double mlp_ratio = 4.0;
  double mlp_norm_eps = 1e-6;
};

// The sinusoidal features of the noise condition (models/embeddings.h):
// frequencies 10000^(-i/(h - freq_shift)), i < h = dim/2, in the order [cos | sin] (ADM, the
// DiT repository) or [sin | cos] (DDPM). freq_shift 1 is DDPM's and diffusers' DiT's.
enum class TimestepOrder { cos_sin, sin_cos };
inline constexpr std::array<EnumName<TimestepOrder>, 2> kTimestepOrderNames{{
    {"cos_sin", TimestepOrder::cos_sin},
    {"sin_cos", TimestepOrder::sin_cos},
}};

struct TimestepFeatures {
  TimestepOrder order = TimestepOrder::cos_sin;
  int freq_shift = 0;
};

struct ModelOptions {
  ModelArch arch = ModelArch::unet;
  std::string preset;    // registry name; fills the arch options before explicit keys
  int in_channels = 0;   // 0: from the dataset
  int image_size = 0;    // 0: from the dataset
  int num_classes = -1;  // -1: from the dataset (class-conditional); 0: unconditional
  bool learn_sigma = false;
  TimestepFeatures timestep;
  UNetOptions unet;
  DiTOptions dit;
};

const OptionSchema<UNetOptions>& unet_options_schema();
const OptionSchema<DiTOptions>& dit_options_schema();
const OptionSchema<TimestepFeatures>& timestep_features_schema();
const OptionSchema<ModelOptions>& model_options_schema();

}  // namespace diffuse
