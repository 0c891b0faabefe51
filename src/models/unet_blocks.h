#pragma once
// The building blocks of the ADM/DDPM UNet (Ho et al. 2020, Appendix B; Dhariwal & Nichol
// 2021, "guided-diffusion" unet.py), shared by the UNet (unet.cpp) and the noise-conditional
// classifier built from its encoder half (classifier.cpp). Private to src/models.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "diffuse/core/compat.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/models/model_options.h"

namespace diffuse::unet_blocks {

namespace F = torch::nn::functional;

// ε: model.unet.norm_eps (ADM's GroupNorm32 uses PyTorch's default 1e-5, DDPM 1e-6).
inline torch::nn::GroupNorm group_norm(int64_t groups, int64_t channels, double eps) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(eps));
}

inline torch::nn::Conv2d conv3x3(int64_t in_channels, int64_t out_channels, int64_t stride = 1,
                                 int64_t padding = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in_channels, out_channels, 3).stride(stride).padding(padding));
}

inline torch::nn::Conv2d conv1x1(int64_t in_channels, int64_t out_channels) {
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

inline std::string shape_of(const torch::Tensor& t) {
  return t.defined() ? shape_text(t.sizes()) : "undefined";
}

// Side length after one downsampling step. Rounding up keeps every pixel of an odd feature
// map (7 → 4): both the strided 3×3 conv (padding 1) and the ceil-mode average pool give it.
inline int64_t downsampled_size(int64_t size) { return (size + 1) / 2; }

inline torch::Tensor average_pool_down(const torch::Tensor& x) {
  // The ragged last window of an odd map averages only the pixels it covers (no padding).
  return F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2).ceil_mode(true));
}

// Nearest-neighbour upsampling to `size` = the H, W of the skip it will be concatenated with:
// exactly ×2 for even maps, and it restores odd ones (4 → 7).
inline torch::Tensor nearest_up(const torch::Tensor& x, c10::IntArrayRef size) {
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
  // Reads dropout, num_groups, norm_eps and scale_shift_norm of `unet`.
  ResBlockImpl(int64_t in_channels, int64_t out_channels, int64_t emb_channels, const UNetOptions& unet,
               Resample resample = Resample::none)
      : scale_shift_norm_(unet.scale_shift_norm), resample_(resample) {
    in_norm_ = register_module("in_norm", group_norm(unet.num_groups, in_channels, unet.norm_eps));
    in_conv_ = register_module("in_conv", conv3x3(in_channels, out_channels));
    emb_proj_ = register_module(
        "emb_proj",
        torch::nn::Linear(emb_channels, scale_shift_norm_ ? 2 * out_channels : out_channels));
    out_norm_ = register_module("out_norm", group_norm(unet.num_groups, out_channels, unet.norm_eps));
    dropout_ = register_module("dropout", torch::nn::Dropout(unet.dropout));
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
// (Ho et al. 2020 App. B with one head; ADM AttentionBlock), without the GN where `norm` is
// false (model.unet.middle_attention_norm). q, k, v come from one 1×1 conv,
// which keeps the input's memory format, and the product runs in the fused kernel where the
// LibTorch version has one (compat::scaled_dot_product_attention).
class AttentionBlockImpl : public torch::nn::Module {
 public:
  AttentionBlockImpl(int64_t channels, int64_t heads, int64_t groups, double eps, bool norm) : heads_(heads) {
    if (norm) norm_ = register_module("norm", group_norm(groups, channels, eps));
    qkv_ = register_module("qkv", conv1x1(channels, 3 * channels));
    proj_ = register_module("proj", zero_init(conv1x1(channels, channels)));
  }

  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t head_dim = C / heads_;
    // Views in both NCHW and channels-last layouts: H·W merge, 3C splits (3, heads, d).
    auto qkv = qkv_(norm_ ? norm_(x) : x)                                 // [B, 3C, H, W]
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

// Resampling by convolution (DDPM, ADM without resblock_updown): a strided 3×3 conv down
// (padded as model.unet.downsample_padding says), nearest-neighbour ×2 followed by a 3×3
// conv up.
class ConvResampleImpl : public torch::nn::Module {
 public:
  ConvResampleImpl(int64_t channels, Resample direction,
                   DownsamplePadding padding = DownsamplePadding::symmetric)
      : direction_(direction), bottom_right_(direction == Resample::down && padding == DownsamplePadding::bottom_right) {
    const int64_t stride = direction == Resample::down ? 2 : 1;
    conv_ = register_module("conv", conv3x3(channels, channels, stride, bottom_right_ ? 0 : 1));
  }

  torch::Tensor forward(const torch::Tensor& x, c10::IntArrayRef up_size) {
    if (direction_ == Resample::up) return conv_(nearest_up(x, up_size));  // [B, C, H_up, W_up]
    if (bottom_right_) return conv_(F::pad(x, F::PadFuncOptions({0, 1, 0, 1})));  // [B, C, H/2, W/2]
    return conv_(x);                                                        // [B, C, ⌈H/2⌉, ⌈W/2⌉]
  }

 private:
  Resample direction_;
  bool bottom_right_;
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

inline bool has_attention(const UNetOptions& unet, int64_t size) {
  const auto& sizes = unet.attention_resolutions;
  return std::find(sizes.begin(), sizes.end(), size) != sizes.end();
}

inline int64_t heads_for(const UNetOptions& unet, int64_t channels) {
  return unet.head_channels > 0 ? channels / unet.head_channels : unet.num_heads;
}

// The whole network: noise (and class) embedding, encoder with stored skips, middle

// Checks that the options fit together before anything is built; throws ConfigError naming
// the key (see unet_blocks.cpp).
UNetLayout validate_options(const ModelOptions& options);

// The noise embedding both networks compute: sinusoid(c_noise) → Linear → SiLU → Linear.
// The layers are registered on the network itself as time_embed_in and time_embed_out, the
// names its checkpoints (and the diffusers importer) use.
struct NoiseEmbedding {
  torch::nn::Linear in{nullptr};
  torch::nn::Linear out{nullptr};

  // [B] noise conditions → [B, emb_channels], from features of width unet.base_channels.
  torch::Tensor forward(const torch::Tensor& noise_cond, const ModelOptions& options);
};
NoiseEmbedding register_noise_embedding(torch::nn::Module& owner, int64_t base, int64_t emb_channels);

// Makes the layers both networks build from model.unet: ResBlocks with the noise embedding
// of width emb_channels, attention and level-changing layers.
class BlockFactory {
 public:
  BlockFactory(const UNetOptions& unet, int64_t emb_channels) : unet_(unet), emb_channels_(emb_channels) {}
  ResBlock res(int64_t in, int64_t out, Resample resample = Resample::none) const {
    return ResBlock(in, out, emb_channels_, unet_, resample);
  }
  AttentionBlock attention(int64_t channels, bool norm = true) const {
    return AttentionBlock(channels, heads_for(unet_, channels), unet_.num_groups, unet_.norm_eps, norm);
  }
  // A level-changing layer: BigGAN-style ResBlock or a conv (see ConvResample).
  UNetBlock resample(int64_t channels, Resample direction) const {
    if (unet_.resblock_updown) return UNetBlock(nullptr, nullptr, res(channels, channels, direction), nullptr);
    return UNetBlock(nullptr, nullptr, nullptr, ConvResample(channels, direction, unet_.downsample_padding));
  }

 private:
  const UNetOptions& unet_;
  int64_t emb_channels_;
};

// The encoder after the input conv: per level of channel_mult, num_res_blocks ResBlocks
// (+ attention at the listed sizes), then a downsampling layer between levels. `channels`
// holds the width after the input conv and after each block (the UNet's skips), so its last
// entry is the encoder's output width.
struct EncoderBlocks {
  std::vector<UNetBlock> blocks;
  std::vector<int64_t> channels;
};
EncoderBlocks make_encoder_blocks(const UNetOptions& unet, const UNetLayout& layout,
                                  const BlockFactory& factory);

}  // namespace diffuse::unet_blocks
