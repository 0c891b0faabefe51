#include "unet_blocks.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "diffuse/core/error.h"
#include "diffuse/core/text.h"
#include "diffuse/models/embeddings.h"

namespace diffuse::unet_blocks {
namespace {

[[noreturn]] void fail(const std::string& message) { throw ConfigError(message); }

// The resolved sizes, then every UNet key against its schema (the ranges the config parser
// applies, so a UNet built in C++ is held to the same ones).
void check_scalar_options(const ModelOptions& options) {
  if (options.in_channels < 1)
    fail("model.in_channels must be >= 1, got " + std::to_string(options.in_channels));
  if (options.image_size < 1)
    fail("model.image_size must be >= 1, got " + std::to_string(options.image_size));
  if (options.num_classes < 0)
    fail("model.num_classes must be resolved (>= 0), got " + std::to_string(options.num_classes));
  unet_options_schema().validate(options.unet, "model.unet");
}

// base, then base·mult of each level, checked against num_groups.
std::vector<int64_t> checked_widths(const UNetOptions& u) {
  // Every GroupNorm sees base·mult channels or a sum of them (decoder concatenations), so
  // dividing each base·mult (and base, the input conv's width) is enough.
  std::vector<int64_t> widths{u.base_channels};
  for (int m : u.channel_mult) widths.push_back(int64_t{u.base_channels} * m);
  for (int64_t w : widths)
    if (w % u.num_groups != 0)
      fail("model.unet.num_groups (" + std::to_string(u.num_groups) +
           ") must divide every channel count base_channels × channel_mult (" + join(widths, ", ") +
           "); " + std::to_string(w) + " is not divisible");
  return widths;
}

// The feature-map side of each level, checked to halve down to the last.
UNetLayout checked_layout(const ModelOptions& options) {
  const UNetOptions& u = options.unet;
  UNetLayout layout;
  layout.level_sizes.push_back(options.image_size);
  for (size_t level = 1; level < u.channel_mult.size(); ++level) {
    // Halving a 1-pixel map gives 1 pixel again: such levels would add nothing but weights.
    if (layout.level_sizes.back() < 2)
      fail("model.unet.channel_mult has " + std::to_string(u.channel_mult.size()) + " levels, but a " +
           std::to_string(options.image_size) + "x" + std::to_string(options.image_size) +
           " image is down to 1 pixel after " + std::to_string(level - 1) +
           " halvings; use at most " + std::to_string(level) + " levels or larger images");
    if (u.downsample_padding == DownsamplePadding::bottom_right && layout.level_sizes.back() % 2 != 0)
      fail("model.unet.downsample_padding bottom_right halves even feature maps only, but level " +
           std::to_string(level - 1) + " of a " + std::to_string(options.image_size) + "x" +
           std::to_string(options.image_size) + " image is " + std::to_string(layout.level_sizes.back()) +
           " pixels wide; use symmetric, fewer levels or another image size");
    layout.level_sizes.push_back(downsampled_size(layout.level_sizes.back()));
  }
  return layout;
}

void check_attention(const ModelOptions& options, const std::vector<int64_t>& widths, const UNetLayout& layout) {
  const UNetOptions& u = options.unet;
  // Widths that get attention: the listed levels, and always the middle block.
  std::vector<int64_t> attention_widths{widths.back()};
  for (size_t level = 0; level < u.channel_mult.size(); ++level)
    if (has_attention(u, layout.level_sizes[level])) attention_widths.push_back(widths[level + 1]);
  for (int64_t w : attention_widths) {
    if (u.head_channels > 0 && w % u.head_channels != 0)
      fail("model.unet.head_channels (" + std::to_string(u.head_channels) +
           ") must divide the channel count " + std::to_string(w) + " of every attention layer");
    if (u.head_channels <= 0 && (u.num_heads < 1 || w % u.num_heads != 0))
      fail("model.unet.num_heads (" + std::to_string(u.num_heads) +
           ") must be >= 1 and divide the channel count " + std::to_string(w) +
           " of every attention layer (or set model.unet.head_channels > 0)");
  }
  if (!u.attention_resolutions.empty() && attention_widths.size() == 1) {
    spdlog::warn("model.unet.attention_resolutions [{}] matches no feature-map size at "
                 "image_size {} (sizes: {}); only the middle block gets attention",
                 join(u.attention_resolutions, ", "), options.image_size, join(layout.level_sizes, ", "));
  }
}

}  // namespace

// Checks that the options fit together before anything is built; throws ConfigError naming
// the key. attention_resolutions: a size that occurs at no level is allowed (presets list
// sizes for several input resolutions, e.g. unet_small {7, 8} for 28 and 32 pixels), but a
// list none of whose sizes occurs gives a warning, since the model then has attention only
// in its middle block.
UNetLayout validate_options(const ModelOptions& options) {
  check_scalar_options(options);
  const std::vector<int64_t> widths = checked_widths(options.unet);
  UNetLayout layout = checked_layout(options);
  check_attention(options, widths, layout);
  return layout;
}

NoiseEmbedding register_noise_embedding(torch::nn::Module& owner, int64_t base, int64_t emb_channels) {
  NoiseEmbedding embedding;
  embedding.in = owner.register_module("time_embed_in", torch::nn::Linear(base, emb_channels));
  embedding.out = owner.register_module("time_embed_out", torch::nn::Linear(emb_channels, emb_channels));
  return embedding;
}

torch::Tensor NoiseEmbedding::forward(const torch::Tensor& noise_cond, const ModelOptions& options) {
  auto emb = sinusoidal_embedding(noise_cond, options.unet.base_channels, options.timestep)
                 .to(in->weight.scalar_type());  // [B, base]
  return out(F::silu(in(emb)));                  // [B, 4·base]
}

EncoderBlocks make_encoder_blocks(const UNetOptions& u, const UNetLayout& layout,
                                  const BlockFactory& factory) {
  EncoderBlocks encoder;
  const int64_t base = u.base_channels;
  const int64_t levels = static_cast<int64_t>(u.channel_mult.size());
  int64_t ch = base;
  encoder.channels.push_back(ch);
  for (int64_t level = 0; level < levels; ++level) {
    const int64_t size = layout.level_sizes[static_cast<size_t>(level)];
    for (int i = 0; i < u.num_res_blocks; ++i) {
      const int64_t out = base * u.channel_mult[static_cast<size_t>(level)];
      encoder.blocks.push_back(UNetBlock(factory.res(ch, out),
                                         has_attention(u, size) ? factory.attention(out) : nullptr,
                                         nullptr, nullptr));
      ch = out;
      encoder.channels.push_back(ch);
    }
    if (level + 1 < levels) {
      encoder.blocks.push_back(factory.resample(ch, Resample::down));
      encoder.channels.push_back(ch);
    }
  }
  return encoder;
}

}  // namespace diffuse::unet_blocks
