#include "diffuse/models/model_options.h"

#include "diffuse/data/data_options.h"
#include "diffuse/models/registry.h"

namespace diffuse {

namespace {

// Dropout, GroupNorm and the resampling blocks.
void add_unet_normalisation(OptionSchema<UNetOptions>& s) {
  using O = UNetOptions;
  s.field("dropout", &O::dropout, "dropout in the residual blocks", checks::range(0.0, 0.99));
  s.field("num_groups", &O::num_groups, "GroupNorm groups (must divide every width)",
          checks::int_range<int>(1, 1024));
  s.field("norm_eps", &O::norm_eps, "GroupNorm ε (ADM: PyTorch's default; DDPM 1e-6)",
          checks::positive(0.1));
  s.field("scale_shift_norm", &O::scale_shift_norm,
          "ADM's adaptive GroupNorm: (scale, shift) from the embedding");
  s.field(
      "middle_attention_norm", &O::middle_attention_norm,
      "GroupNorm before the middle attention (diffusers' UNetMidBlock2D has none under scale-shift "
      "conditioning)");
  s.field("resblock_updown", &O::resblock_updown,
          "BigGAN-style residual blocks for down- and up-sampling");
  s.choice(
      "downsample_padding", &O::downsample_padding, kDownsamplePaddingNames,
      "strided-conv padding: symmetric (ADM) or bottom_right (DDPM's TensorFlow 'SAME', diffusers' "
      "padding 0; even sizes only, not with resblock_updown)");
  s.rule([](const O& o, const OptionFail& fail) {
    if (o.resblock_updown && o.downsample_padding != DownsamplePadding::symmetric)
      fail("downsample_padding",
           "applies to conv downsampling, but resblock_updown true downsamples by average "
           "pooling; leave it symmetric or set resblock_updown false");
  });
}

OptionSchema<UNetOptions> make_unet_schema() {
  using O = UNetOptions;
  OptionSchema<O> s;
  s.field("base_channels", &O::base_channels, "width of the first level",
          checks::int_range<int>(1, 4096));
  s.field("channel_mult", &O::channel_mult,
          "width multiplier of each level; the image must stay ≥ 2 px until the last level",
          checks::custom<std::vector<int>>(
              "1 to 8 levels, each in [1, 64]", [](const std::vector<int>& mult) {
                if (mult.empty() || mult.size() > 8)
                  return "must list 1 to 8 multipliers, found " + std::to_string(mult.size());
                for (int m : mult)
                  if (m < 1 || m > 64)
                    return "multipliers must lie in [1, 64], found " + std::to_string(m);
                return std::string();
              }));
  s.field("num_res_blocks", &O::num_res_blocks, "residual blocks per level",
          checks::int_range<int>(1, 64));
  s.field("attention_resolutions", &O::attention_resolutions,
          "feature-map sizes (pixels) that get self-attention",
          checks::custom<std::vector<int>>("sizes in [1, 4096]", [](const std::vector<int>& sizes) {
            for (int r : sizes)
              if (r < 1 || r > kMaxImageSize)
                return "sizes must lie in [1, " + std::to_string(kMaxImageSize) + "], found " +
                       std::to_string(r);
            return std::string();
          }));
  s.field("num_heads", &O::num_heads, "attention heads (must divide each attention width)",
          checks::int_range<int>(1, 1024));
  s.field("head_channels", &O::head_channels, "channels per head; > 0 overrides num_heads",
          checks::custom<int>("-1 or [1, 4096]", [](const int& v) {
            return v != -1 && (v < 1 || v > 4096)
                       ? "must be -1 (use num_heads) or an integer in [1, 4096], found " +
                             std::to_string(v)
                       : std::string();
          }));
  add_unet_normalisation(s);
  return s;
}

OptionSchema<DiTOptions> make_dit_schema() {
  using O = DiTOptions;
  OptionSchema<O> s;
  s.field("depth", &O::depth, "transformer blocks", checks::int_range<int>(1, 1024));
  s.field("hidden_size", &O::hidden_size, "token width, a multiple of `num_heads` (and of 4)",
          checks::int_range<int>(1, 16384));
  s.field("num_heads", &O::num_heads, "attention heads", checks::int_range<int>(1, 1024));
  s.field("patch_size", &O::patch_size, "patch side in pixels; divides the image size",
          checks::int_range<int>(1, 64));
  s.field("mlp_ratio", &O::mlp_ratio, "MLP width / hidden_size", checks::positive(64.0));
  s.field("mlp_norm_eps", &O::mlp_norm_eps,
          "ε of the LayerNorm before each MLP (DiT repository 1e-6, diffusers 1e-5)",
          checks::positive(0.1));
  s.rule([](const O& o, const OptionFail& fail) {
    if (o.hidden_size % o.num_heads != 0)
      fail("hidden_size", "must be a positive multiple of num_heads (" +
                              std::to_string(o.num_heads) + "), found " +
                              std::to_string(o.hidden_size));
  });
  return s;
}

OptionSchema<TimestepFeatures> make_timestep_features_schema() {
  using O = TimestepFeatures;
  OptionSchema<O> s;
  s.choice(
      "order", &O::order, kTimestepOrderNames,
      "order of the sinusoidal noise-condition features: cos_sin (ADM, DiT) or sin_cos (DDPM)");
  s.field("freq_shift", &O::freq_shift,
          "1: frequencies 10000^(-i/(h-1)) (DDPM and diffusers' DiT); 0: 10000^(-i/h)",
          checks::int_range<int>(0, 1));
  return s;
}

// model.preset fills the arch options before the explicit keys are read; it must agree
// with an explicit model.arch.
void apply_preset(ConfigNode& n, ModelOptions& o) {
  if (o.preset.empty()) return;
  const ModelArch arch = o.arch;
  try {
    apply_model_preset(o.preset, o);
  } catch (const ConfigError& e) {
    n.fail("preset", e.what());
  }
  // A classifier is the encoder half of a UNet, so it takes the UNet presets.
  if (arch == ModelArch::classifier) {
    if (o.arch != ModelArch::unet)
      n.fail("preset", "a classifier takes a UNet preset, not '" + o.preset + "'");
    o.arch = ModelArch::classifier;
  } else if (n.has("arch") && o.arch != arch) {
    n.fail("preset", "'" + o.preset + "' is a " + enum_name(o.arch, kModelArchNames) +
                         " preset but model.arch is " + enum_name(arch, kModelArchNames) +
                         "; drop one of them or pick a " + enum_name(arch, kModelArchNames) +
                         " preset");
  }
}

bool uses_unet(const ModelOptions& o) {
  return o.arch == ModelArch::unet || o.arch == ModelArch::classifier;
}

OptionSchema<ModelOptions> make_model_schema() {
  using O = ModelOptions;
  OptionSchema<O> s;
  s.choice("arch", &O::arch, kModelArchNames,
           "`unet`, `dit` or `classifier` (noise-conditional classifier: the UNet encoder half "
           "with attention "
           "pooling; takes `model.unet.*` and the UNet presets)");
  s.field("preset", &O::preset,
          "`ddpm_cifar10`, `unet_small`, `dit_{s,b,l,xl}_{2,4,8}`; fills the arch options before "
          "explicit keys "
          "(must match `model.arch` when both are given)")
      .after_read(apply_preset);
  s.field("in_channels", &O::in_channels, "image channels; 0 = from the dataset",
          checks::zero_or_int_range<int>(1, kMaxImageChannels, "from the dataset"));
  s.field("image_size", &O::image_size, "image side; 0 = from the dataset",
          checks::zero_or_int_range<int>(2, kMaxImageSize, "from the dataset"));
  s.field("num_classes", &O::num_classes,
          "-1 = from the dataset (class-conditional), 0 = unconditional, else the class count",
          checks::custom<int>("-1 or [0, 1000000]", [](const int& v) {
            return v < -1 || v > 1'000'000 ? "must be -1 (from the dataset), 0 (unconditional) or "
                                             "a count up to 1000000, found " +
                                                 std::to_string(v)
                                           : std::string();
          }));
  s.field("learn_sigma", &O::learn_sigma,
          "learned variance: doubles the output channels; hybrid loss (Nichol & Dhariwal 2021)");
  s.section("timestep", &O::timestep, timestep_features_schema());
  s.section("unet", &O::unet, unet_options_schema()).emit_if(uses_unet);
  s.section("dit", &O::dit, dit_options_schema()).emit_if([](const O& o) {
    return o.arch == ModelArch::dit;
  });
  s.rule([](const O& o, const OptionFail& fail) {
    if (o.learn_sigma && o.arch == ModelArch::classifier)
      fail("learn_sigma", "a classifier has no variance output");
  });
  return s;
}

}  // namespace

const OptionSchema<UNetOptions>& unet_options_schema() { return built_once<make_unet_schema>(); }

const OptionSchema<DiTOptions>& dit_options_schema() { return built_once<make_dit_schema>(); }

const OptionSchema<TimestepFeatures>& timestep_features_schema() {
  return built_once<make_timestep_features_schema>();
}

const OptionSchema<ModelOptions>& model_options_schema() { return built_once<make_model_schema>(); }

}  // namespace diffuse
