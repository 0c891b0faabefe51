// ADM/DDPM-style UNet: Ho et al. 2020 (DDPM, Appendix B) as generalised by Dhariwal &
// Nichol 2021 (ADM, "guided-diffusion" unet.py). One file, top to bottom: helpers, the
// residual block, attention, resampling, one encoder/decoder entry, the network, options
// validation and the factory.
#include "diffuse/models/unet.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "diffuse/core/compat.h"
#include "diffuse/core/error.h"
#include "diffuse/models/embeddings.h"

namespace diffuse {
namespace {

namespace F = torch::nn::functional;

// ADM's GroupNorm32 uses PyTorch's default ε.
constexpr double kGroupNormEps = 1e-5;

torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(kGroupNormEps));
}

torch::nn::Conv2d conv3x3(int64_t in_channels, int64_t out_channels, int64_t stride = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in_channels, out_channels, 3).stride(stride).padding(1));
}

torch::nn::Conv2d conv1x1(int64_t in_channels, int64_t out_channels) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 1));
}

// ADM's zero_module: layers that end a residual branch start at zero, so every block starts
// as the identity and a fresh network outputs exactly zero.
template <typename Holder>
Holder zero_init(Holder layer) {
  torch::NoGradGuard no_grad;
  for (auto& p : layer->parameters()) p.zero_();
  return layer;
}

std::string shape_of(const torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

// Side length after one downsampling step. Rounding up keeps every pixel of an odd feature
// map (7 → 4): both the strided 3×3 conv (padding 1) and the ceil-mode average pool give it.
int64_t downsampled_size(int64_t size) { return (size + 1) / 2; }

torch::Tensor average_pool_down(const torch::Tensor& x) {
  // The ragged last window of an odd map averages only the pixels it covers (no padding).
  return F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2).ceil_mode(true));
}

// Nearest-neighbour upsampling to `size` = the H, W of the skip it will be concatenated with:
// exactly ×2 for even maps, and it restores odd ones (4 → 7).
torch::Tensor nearest_up(const torch::Tensor& x, c10::IntArrayRef size) {
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>(size.begin(), size.end()))
                               .mode(torch::kNearest));
}

enum class Resample { none, down, up };

// Residual block with noise (and class) embedding, `emb` [B, E]:
//   h = conv(SiLU(GN(x)))
//   DDPM (additive):      h = GN(h + Linear(SiLU(emb)))
//   ADM (scale_shift):    h = GN(h)·(1 + s) + b,  (s, b) = Linear(SiLU(emb))
//   out = skip(x) + conv₀(dropout(SiLU(h)))
// conv₀ starts at zero; skip is a 1×1 conv when the channel count changes. With resampling
// (BigGAN-style, ADM resblock_updown) both branches are resampled after the first SiLU(GN).
class ResBlockImpl : public torch::nn::Module {
 public:
  ResBlockImpl(int64_t in_channels, int64_t out_channels, int64_t emb_channels, double dropout,
               int64_t groups, bool scale_shift_norm, Resample resample = Resample::none)
      : scale_shift_norm_(scale_shift_norm), resample_(resample) {
    in_norm_ = register_module("in_norm", group_norm(groups, in_channels));
    in_conv_ = register_module("in_conv", conv3x3(in_channels, out_channels));
    emb_proj_ = register_module(
        "emb_proj",
        torch::nn::Linear(emb_channels, scale_shift_norm ? 2 * out_channels : out_channels));
    out_norm_ = register_module("out_norm", group_norm(groups, out_channels));
    dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
    out_conv_ = register_module("out_conv", zero_init(conv3x3(out_channels, out_channels)));
    if (in_channels != out_channels)
      skip_ = register_module("skip", conv1x1(in_channels, out_channels));
  }

  // `up_size`: the H, W to upsample to (only read when this block upsamples).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb,
                        c10::IntArrayRef up_size = {}) {
    auto h = in_conv_(resample(F::silu(in_norm_(x)), up_size));        // [B, C_out, H', W']
    auto e = emb_proj_(F::silu(emb)).unsqueeze(-1).unsqueeze(-1);       // [B, (2·)C_out, 1, 1]
    if (scale_shift_norm_) {
      auto scale_shift = e.chunk(2, 1);                                   // 2 × [B, C_out, 1, 1]
      h = out_norm_(h) * (scale_shift[0] + 1) + scale_shift[1];
    } else {
      h = out_norm_(h + e);
    }
    h = out_conv_(dropout_(F::silu(h)));                                 // [B, C_out, H', W']
    auto shortcut = resample(x, up_size);                                // [B, C_in, H', W']
    return (skip_ ? skip_(shortcut) : shortcut) + h;
  }

 private:
  torch::Tensor resample(const torch::Tensor& t, c10::IntArrayRef up_size) const {
    switch (resample_) {
      case Resample::none: return t;
      case Resample::down: return average_pool_down(t);
      case Resample::up: return nearest_up(t, up_size);
    }
    return t;
  }

  bool scale_shift_norm_;
  Resample resample_;
  torch::nn::GroupNorm in_norm_{nullptr};
  torch::nn::Conv2d in_conv_{nullptr};
  torch::nn::Linear emb_proj_{nullptr};
  torch::nn::GroupNorm out_norm_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Conv2d out_conv_{nullptr};
  torch::nn::Conv2d skip_{nullptr};
};
TORCH_MODULE(ResBlock);

// Multi-head self-attention over the H·W positions: x + proj₀(attention(GN(x)))
// (Ho et al. 2020 App. B with one head; ADM AttentionBlock). q, k, v come from one 1×1 conv,
// which keeps the input's memory format, and the product runs in the fused kernel where the
// LibTorch version has one (compat::scaled_dot_product_attention).
class AttentionBlockImpl : public torch::nn::Module {
 public:
  AttentionBlockImpl(int64_t channels, int64_t heads, int64_t groups) : heads_(heads) {
    norm_ = register_module("norm", group_norm(groups, channels));
    qkv_ = register_module("qkv", conv1x1(channels, 3 * channels));
    proj_ = register_module("proj", zero_init(conv1x1(channels, channels)));
  }

  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t head_dim = C / heads_;
    // Views in both NCHW and channels-last layouts: H·W merge, 3C splits (3, heads, d).
    auto qkv = qkv_(norm_(x))                                             // [B, 3C, H, W]
                   .reshape({B, 3, heads_, head_dim, H * W})               // [B, 3, heads, d, N]
                   .permute({1, 0, 2, 4, 3});                              // [3, B, heads, N, d]
    auto out = compat::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]);  // [B, heads, N, d]
    // Back to an image in the input's layout; channel index = head·d + i, as split above.
    torch::Tensor image;
    if (x.suggest_memory_format() == torch::MemoryFormat::ChannelsLast) {
      image = out.permute({0, 2, 1, 3})                                    // [B, N, heads, d]
                  .reshape({B, H, W, C})
                  .permute({0, 3, 1, 2});                                  // [B, C, H, W]
    } else {
      image = out.transpose(2, 3).reshape({B, C, H, W});                  // [B, C, H, W]
    }
    return x + proj_(image);
  }

 private:
  int64_t heads_;
  torch::nn::GroupNorm norm_{nullptr};
  torch::nn::Conv2d qkv_{nullptr};
  torch::nn::Conv2d proj_{nullptr};
};
TORCH_MODULE(AttentionBlock);

// Resampling by convolution (DDPM, ADM without resblock_updown): a strided 3×3 conv down,
// nearest-neighbour ×2 followed by a 3×3 conv up.
class ConvResampleImpl : public torch::nn::Module {
 public:
  ConvResampleImpl(int64_t channels, Resample direction) : direction_(direction) {
    const int64_t stride = direction == Resample::down ? 2 : 1;
    conv_ = register_module("conv", conv3x3(channels, channels, stride));
  }

  torch::Tensor forward(const torch::Tensor& x, c10::IntArrayRef up_size) {
    if (direction_ == Resample::up) return conv_(nearest_up(x, up_size));  // [B, C, H_up, W_up]
    return conv_(x);                                                        // [B, C, ⌈H/2⌉, ⌈W/2⌉]
  }

 private:
  Resample direction_;
  torch::nn::Conv2d conv_{nullptr};
};
TORCH_MODULE(ConvResample);

// One entry of the encoder or decoder (ADM's TimestepEmbedSequential): a ResBlock, then
// attention where the feature map has a listed size, then, where a level ends, a resampling
// layer (a ResBlock or a conv); or a lone resampling layer between encoder levels.
// Null parts are skipped.
class UNetBlockImpl : public torch::nn::Module {
 public:
  UNetBlockImpl(ResBlock res, AttentionBlock attention, ResBlock resample_res,
                ConvResample resample_conv)
      : res_(std::move(res)),
        attention_(std::move(attention)),
        resample_res_(std::move(resample_res)),
        resample_conv_(std::move(resample_conv)) {
    if (res_) register_module("res", res_);
    if (attention_) register_module("attention", attention_);
    if (resample_res_) register_module("resample", resample_res_);
    if (resample_conv_) register_module("resample", resample_conv_);
  }

  torch::Tensor forward(torch::Tensor h, const torch::Tensor& emb, c10::IntArrayRef up_size) {
    if (res_) h = res_(h, emb);
    if (attention_) h = attention_(h);
    if (resample_res_) h = resample_res_(h, emb, up_size);
    if (resample_conv_) h = resample_conv_(h, up_size);
    return h;
  }

 private:
  ResBlock res_;
  AttentionBlock attention_;
  ResBlock resample_res_;
  ConvResample resample_conv_;
};
TORCH_MODULE(UNetBlock);

// What validate_options derives from the options: the feature-map side length at each level.
struct UNetLayout {
  std::vector<int64_t> level_sizes;  // level_sizes[0] = image_size, then ⌈·/2⌉ per level
};

bool has_attention(const UNetOptions& unet, int64_t size) {
  const auto& sizes = unet.attention_resolutions;
  return std::find(sizes.begin(), sizes.end(), size) != sizes.end();
}

int64_t heads_for(const UNetOptions& unet, int64_t channels) {
  return unet.head_channels > 0 ? channels / unet.head_channels : unet.num_heads;
}

// The whole network: noise (and class) embedding, encoder with stored skips, middle
// Res-Attention-Res, decoder that concatenates the skips, GN-SiLU-conv₀ output.
class UNet final : public DiffusionNet {
 public:
  UNet(const ModelOptions& options, const UNetLayout& layout) : options_(options) {
    const UNetOptions& u = options.unet;
    const int64_t base = u.base_channels;
    const int64_t emb_channels = 4 * base;
    const int64_t groups = u.num_groups;
    const int64_t out_channels = options.in_channels * (options.learn_sigma ? 2 : 1);
    const auto res_block = [&](int64_t in, int64_t out, Resample resample = Resample::none) {
      return ResBlock(in, out, emb_channels, u.dropout, groups, u.scale_shift_norm, resample);
    };
    const auto attention = [&](int64_t channels) {
      return AttentionBlock(channels, heads_for(u, channels), groups);
    };
    // A level-changing layer: BigGAN-style ResBlock or a conv (see ConvResample).
    const auto resample_block = [&](int64_t channels, Resample direction) {
      if (u.resblock_updown)
        return UNetBlock(nullptr, nullptr, res_block(channels, channels, direction), nullptr);
      return UNetBlock(nullptr, nullptr, nullptr, ConvResample(channels, direction));
    };

    // Noise embedding (DDPM App. B): sinusoid(c_noise) → Linear → SiLU → Linear, width 4·base.
    time_embed_in_ = register_module("time_embed_in", torch::nn::Linear(base, emb_channels));
    time_embed_out_ =
        register_module("time_embed_out", torch::nn::Linear(emb_channels, emb_channels));
    // Class embedding added to it (ADM); row num_classes is the null label for CFG.
    if (options.num_classes > 0)
      label_embed_ = register_module(
          "label_embed", torch::nn::Embedding(options.num_classes + 1, emb_channels));

    input_conv_ = register_module("input_conv", conv3x3(options.in_channels, base));
    input_list_ = register_module("input_blocks", torch::nn::ModuleList());
    output_list_ = register_module("output_blocks", torch::nn::ModuleList());

    const int64_t levels = static_cast<int64_t>(u.channel_mult.size());
    std::vector<int64_t> skip_channels{base};
    int64_t ch = base;
    for (int64_t level = 0; level < levels; ++level) {
      const int64_t size = layout.level_sizes[level];
      for (int i = 0; i < u.num_res_blocks; ++i) {
        const int64_t out = base * u.channel_mult[level];
        add_input(UNetBlock(res_block(ch, out),
                            has_attention(u, size) ? attention(out) : nullptr, nullptr, nullptr));
        ch = out;
        skip_channels.push_back(ch);
      }
      if (level + 1 < levels) {
        add_input(resample_block(ch, Resample::down));
        skip_channels.push_back(ch);
      }
    }

    middle_in_ = register_module("middle_in", res_block(ch, ch));
    middle_attention_ = register_module("middle_attention", attention(ch));
    middle_out_ = register_module("middle_out", res_block(ch, ch));

    for (int64_t level = levels - 1; level >= 0; --level) {
      const int64_t size = layout.level_sizes[level];
      for (int i = 0; i <= u.num_res_blocks; ++i) {
        const int64_t out = base * u.channel_mult[level];
        ResBlock res = res_block(ch + skip_channels.back(), out);
        skip_channels.pop_back();
        ch = out;
        AttentionBlock attn = has_attention(u, size) ? attention(ch) : nullptr;
        const bool ends_level = level > 0 && i == u.num_res_blocks;
        if (ends_level && u.resblock_updown) {
          add_output(UNetBlock(res, attn, res_block(ch, ch, Resample::up), nullptr));
        } else if (ends_level) {
          add_output(UNetBlock(res, attn, nullptr, ConvResample(ch, Resample::up)));
        } else {
          add_output(UNetBlock(res, attn, nullptr, nullptr));
        }
      }
    }

    out_norm_ = register_module("out_norm", group_norm(groups, ch));
    out_conv_ = register_module("out_conv", zero_init(conv3x3(ch, out_channels)));
  }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_cond,
                        const torch::Tensor& labels) override {
    check_inputs(x, noise_cond, labels);
    const int64_t base = options_.unet.base_channels;
    auto emb = sinusoidal_embedding(noise_cond, base)
                   .to(time_embed_in_->weight.scalar_type());               // [B, base]
    emb = time_embed_out_(F::silu(time_embed_in_(emb)));                    // [B, 4·base]
    if (label_embed_) emb = emb + label_embed_(labels);                     // [B, 4·base]

    std::vector<torch::Tensor> skips;
    auto h = input_conv_(x);                                                // [B, base, H, W]
    skips.push_back(h);
    for (auto& block : input_blocks_) {
      h = block->forward(h, emb, {});                                       // [B, C_l, H_l, W_l]
      skips.push_back(h);
    }

    h = middle_in_(h, emb);                                                 // [B, C_mid, H_m, W_m]
    h = middle_attention_(h);
    h = middle_out_(h, emb);

    for (auto& block : output_blocks_) {
      h = torch::cat({h, skips.back()}, 1);                                 // [B, C + C_skip, ...]
      skips.pop_back();
      // A level-ending block upsamples to the size of the skip the next block consumes.
      const c10::IntArrayRef up_size =
          skips.empty() ? c10::IntArrayRef{} : skips.back().sizes().slice(2);
      h = block->forward(h, emb, up_size);                                  // [B, C_l, H_l', W_l']
    }
    return out_conv_(F::silu(out_norm_(h)));                                // [B, C_out, H, W]
  }

  const ModelOptions& options() const override { return options_; }

 private:
  void add_input(UNetBlock block) {
    input_list_->push_back(block);
    input_blocks_.push_back(std::move(block));
  }
  void add_output(UNetBlock block) {
    output_list_->push_back(block);
    output_blocks_.push_back(std::move(block));
  }

  // Metadata checks only: no host sync (label values are range-checked by the embedding).
  void check_inputs(const torch::Tensor& x, const torch::Tensor& noise_cond,
                    const torch::Tensor& labels) const {
    if (x.dim() != 4 || x.size(1) != options_.in_channels)
      throw DataError("UNet: x must be [B, " + std::to_string(options_.in_channels) +
                      ", H, W] (model.in_channels), got " + shape_of(x));
    const int64_t batch = x.size(0);
    if (!noise_cond.defined() || noise_cond.dim() != 1 || noise_cond.size(0) != batch)
      throw DataError("UNet: noise_cond must be [B] = [" + std::to_string(batch) +
                      "] for x of shape " + shape_of(x) + ", got " + shape_of(noise_cond));
    const std::string classes = std::to_string(options_.num_classes);
    if (options_.num_classes > 0) {
      if (!labels.defined() || labels.dim() != 1 || labels.size(0) != batch ||
          !c10::isIntegralType(labels.scalar_type(), /*includeBool=*/false))
        throw DataError("UNet: the model is class-conditional (model.num_classes = " + classes +
                        "), so labels must be an integer tensor of shape [" +
                        std::to_string(batch) + "] for x of shape " + shape_of(x) + ", got " +
                        shape_of(labels) + " (use label " + classes + " for unconditional)");
    } else if (labels.defined()) {
      throw DataError("UNet: the model is unconditional (model.num_classes = 0) but got labels of "
                      "shape " + shape_of(labels) + " for x of shape " + shape_of(x) +
                      "; pass an undefined tensor");
    }
  }

  ModelOptions options_;
  torch::nn::Linear time_embed_in_{nullptr};
  torch::nn::Linear time_embed_out_{nullptr};
  torch::nn::Embedding label_embed_{nullptr};
  torch::nn::Conv2d input_conv_{nullptr};
  torch::nn::ModuleList input_list_{nullptr};   // registers input_blocks_ ("input_blocks.i")
  torch::nn::ModuleList output_list_{nullptr};  // registers output_blocks_ ("output_blocks.i")
  std::vector<UNetBlock> input_blocks_;
  std::vector<UNetBlock> output_blocks_;
  ResBlock middle_in_{nullptr};
  AttentionBlock middle_attention_{nullptr};
  ResBlock middle_out_{nullptr};
  torch::nn::GroupNorm out_norm_{nullptr};
  torch::nn::Conv2d out_conv_{nullptr};
};

std::string join(const std::vector<int64_t>& values) {
  std::string s;
  for (auto v : values) s += (s.empty() ? "" : ", ") + std::to_string(v);
  return s;
}

// Checks that the options fit together before anything is built; throws ConfigError naming
// the key. attention_resolutions: a size that occurs at no level is allowed (presets list
// sizes for several input resolutions, e.g. unet_small {7, 8} for 28 and 32 pixels), but a
// list none of whose sizes occurs gives a warning, since the model then has attention only
// in its middle block.
UNetLayout validate_options(const ModelOptions& options) {
  const UNetOptions& u = options.unet;
  const auto fail = [](const std::string& message) { throw ConfigError(message); };
  if (options.in_channels < 1)
    fail("model.in_channels must be >= 1, got " + std::to_string(options.in_channels));
  if (options.image_size < 1)
    fail("model.image_size must be >= 1, got " + std::to_string(options.image_size));
  if (options.num_classes < 0)
    fail("model.num_classes must be resolved (>= 0), got " + std::to_string(options.num_classes));
  if (u.base_channels < 1)
    fail("model.unet.base_channels must be >= 1, got " + std::to_string(u.base_channels));
  if (u.channel_mult.empty()) fail("model.unet.channel_mult must list at least one level");
  for (int m : u.channel_mult)
    if (m < 1) fail("model.unet.channel_mult values must be >= 1, got " + std::to_string(m));
  if (u.num_res_blocks < 1)
    fail("model.unet.num_res_blocks must be >= 1, got " + std::to_string(u.num_res_blocks));
  if (u.dropout < 0.0 || u.dropout >= 1.0)
    fail("model.unet.dropout must lie in [0, 1), got " + std::to_string(u.dropout));
  if (u.num_groups < 1)
    fail("model.unet.num_groups must be >= 1, got " + std::to_string(u.num_groups));

  // Every GroupNorm sees base·mult channels or a sum of them (decoder concatenations), so
  // dividing each base·mult (and base, the input conv's width) is enough.
  std::vector<int64_t> widths{u.base_channels};
  for (int m : u.channel_mult) widths.push_back(int64_t{u.base_channels} * m);
  for (int64_t w : widths)
    if (w % u.num_groups != 0)
      fail("model.unet.num_groups (" + std::to_string(u.num_groups) +
           ") must divide every channel count base_channels × channel_mult (" + join(widths) +
           "); " + std::to_string(w) + " is not divisible");

  UNetLayout layout;
  layout.level_sizes.push_back(options.image_size);
  for (size_t level = 1; level < u.channel_mult.size(); ++level) {
    // Halving a 1-pixel map gives 1 pixel again: such levels would add nothing but weights.
    if (layout.level_sizes.back() < 2)
      fail("model.unet.channel_mult has " + std::to_string(u.channel_mult.size()) + " levels, but a " +
           std::to_string(options.image_size) + "x" + std::to_string(options.image_size) +
           " image is down to 1 pixel after " + std::to_string(level - 1) +
           " halvings; use at most " + std::to_string(level) + " levels or larger images");
    layout.level_sizes.push_back(downsampled_size(layout.level_sizes.back()));
  }

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
    std::vector<int64_t> listed(u.attention_resolutions.begin(), u.attention_resolutions.end());
    spdlog::warn("model.unet.attention_resolutions [{}] matches no feature-map size at "
                 "image_size {} (sizes: {}); only the middle block gets attention",
                 join(listed), options.image_size, join(layout.level_sizes));
  }
  return layout;
}

}  // namespace

std::shared_ptr<DiffusionNet> make_unet(const ModelOptions& options) {
  const UNetLayout layout = validate_options(options);
  return std::make_shared<UNet>(options, layout);
}

}  // namespace diffuse
