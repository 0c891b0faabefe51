#include "diffuse/models/autoencoder_kl.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "diffuse/core/error.h"
#include "diffuse/core/shape_text.h"

namespace diffuse {
namespace {

// GroupNorm and padding as in diffusers' AutoencoderKL (ε 1e-6 everywhere).
constexpr double kNormEps = 1e-6;

torch::nn::GroupNorm norm(int groups, int channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, channels).eps(kNormEps));
}

torch::nn::Conv2d conv3(int in, int out, int stride = 1, int padding = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(padding));
}

// ResnetBlock2D without a time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))), the
// skip through a 1×1 conv_shortcut when the channel count changes.
class ResnetBlockImpl : public torch::nn::Module {
 public:
  ResnetBlockImpl(int in, int out, int groups)
      : norm1(register_module("norm1", norm(groups, in))),
        conv1(register_module("conv1", conv3(in, out))),
        norm2(register_module("norm2", norm(groups, out))),
        conv2(register_module("conv2", conv3(out, out))) {
    if (in != out) conv_shortcut = register_module("conv_shortcut", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = conv1->forward(torch::silu(norm1->forward(x)));
    h = conv2->forward(torch::silu(norm2->forward(h)));
    return (conv_shortcut ? conv_shortcut->forward(x) : x) + h;
  }
  torch::nn::GroupNorm norm1;
  torch::nn::Conv2d conv1;
  torch::nn::GroupNorm norm2;
  torch::nn::Conv2d conv2, conv_shortcut{nullptr};
};
TORCH_MODULE(ResnetBlock);

// Single-head self-attention over the H·W positions with a residual (diffusers' Attention
// with heads = 1: group_norm, to_q/k/v, to_out.0).
class SpatialAttentionImpl : public torch::nn::Module {
 public:
  SpatialAttentionImpl(int channels, int groups)
      : group_norm(register_module("group_norm", norm(groups, channels))),
        to_q(register_module("to_q", torch::nn::Linear(channels, channels))),
        to_k(register_module("to_k", torch::nn::Linear(channels, channels))),
        to_v(register_module("to_v", torch::nn::Linear(channels, channels))),
        out_proj(torch::nn::Linear(channels, channels)),
        to_out(register_module("to_out", torch::nn::ModuleList(out_proj))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t b = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    const auto tokens = group_norm->forward(x).reshape({b, c, h * w}).transpose(1, 2);  // [B, HW, C]
    const auto q = to_q->forward(tokens), k = to_k->forward(tokens), v = to_v->forward(tokens);
    const auto weights = torch::softmax(torch::bmm(q, k.transpose(1, 2)) / std::sqrt(static_cast<double>(c)), -1);
    const auto out = out_proj->forward(torch::bmm(weights, v));  // [B, HW, C]
    return out.transpose(1, 2).reshape({b, c, h, w}) + x;
  }
  torch::nn::GroupNorm group_norm;
  torch::nn::Linear to_q, to_k, to_v;
  torch::nn::Linear out_proj;  // registered as to_out.0, diffusers' name
  torch::nn::ModuleList to_out;
};
TORCH_MODULE(SpatialAttention);

// UNetMidBlock2D: resnet, attention, resnet.
class MidBlockImpl : public torch::nn::Module {
 public:
  MidBlockImpl(int channels, int groups)
      : resnets(register_module("resnets", torch::nn::ModuleList(ResnetBlock(channels, channels, groups),
                                                                 ResnetBlock(channels, channels, groups)))),
        attentions(register_module("attentions", torch::nn::ModuleList(SpatialAttention(channels, groups)))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = resnets[0]->as<ResnetBlockImpl>()->forward(x);
    h = attentions[0]->as<SpatialAttentionImpl>()->forward(h);
    return resnets[1]->as<ResnetBlockImpl>()->forward(h);
  }
  torch::nn::ModuleList resnets, attentions;
};
TORCH_MODULE(MidBlock);

// DownEncoderBlock2D / UpDecoderBlock2D: `layers` resnets, then a stride-2 conv after a
// (0, 1, 0, 1) pad (down) or nearest ×2 and a conv (up), except in the last block.
class SamplingBlockImpl : public torch::nn::Module {
 public:
  SamplingBlockImpl(int in, int out, int layers, int groups, bool down, bool resample) : down_(down) {
    resnets = register_module("resnets", torch::nn::ModuleList());
    for (int k = 0; k < layers; ++k) resnets->push_back(ResnetBlock(k == 0 ? in : out, out, groups));
    if (!resample) return;
    // Registered as downsamplers.0.conv / upsamplers.0.conv, diffusers' names.
    conv = down ? conv3(out, out, 2, 0) : conv3(out, out);
    auto holder = std::make_shared<torch::nn::Module>();
    holder->register_module("conv", conv);
    samplers = register_module(down ? "downsamplers" : "upsamplers", torch::nn::ModuleList(holder));
  }
  torch::Tensor forward(torch::Tensor x) {
    for (const auto& block : *resnets) x = block->as<ResnetBlockImpl>()->forward(x);
    if (!conv) return x;
    if (down_) return conv->forward(torch::constant_pad_nd(x, {0, 1, 0, 1}));
    return conv->forward(torch::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2}));
  }
  torch::nn::ModuleList resnets{nullptr}, samplers{nullptr};
  torch::nn::Conv2d conv{nullptr};

 private:
  bool down_;
};
TORCH_MODULE(SamplingBlock);

}  // namespace

class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const AutoencoderKLOptions& o) {
    const auto& ch = o.block_out_channels;
    conv_in = register_module("conv_in", conv3(o.in_channels, ch[0]));
    down_blocks = register_module("down_blocks", torch::nn::ModuleList());
    for (size_t i = 0; i < ch.size(); ++i)
      down_blocks->push_back(SamplingBlock(i == 0 ? ch[0] : ch[i - 1], ch[i], o.layers_per_block, o.norm_num_groups,
                                           true, i + 1 < ch.size()));
    mid_block = register_module("mid_block", MidBlock(ch.back(), o.norm_num_groups));
    conv_norm_out = register_module("conv_norm_out", norm(o.norm_num_groups, ch.back()));
    conv_out = register_module("conv_out", conv3(ch.back(), 2 * o.latent_channels));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = conv_in->forward(x);
    for (const auto& block : *down_blocks) h = block->as<SamplingBlockImpl>()->forward(h);
    h = mid_block->forward(h);
    return conv_out->forward(torch::silu(conv_norm_out->forward(h)));
  }
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  MidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const AutoencoderKLOptions& o) {
    const std::vector<int> ch(o.block_out_channels.rbegin(), o.block_out_channels.rend());
    conv_in = register_module("conv_in", conv3(o.latent_channels, ch[0]));
    mid_block = register_module("mid_block", MidBlock(ch[0], o.norm_num_groups));
    up_blocks = register_module("up_blocks", torch::nn::ModuleList());
    for (size_t i = 0; i < ch.size(); ++i)
      up_blocks->push_back(SamplingBlock(i == 0 ? ch[0] : ch[i - 1], ch[i], o.layers_per_block + 1, o.norm_num_groups,
                                         false, i + 1 < ch.size()));
    conv_norm_out = register_module("conv_norm_out", norm(o.norm_num_groups, ch.back()));
    conv_out = register_module("conv_out", conv3(ch.back(), o.out_channels));
  }
  torch::Tensor forward(const torch::Tensor& z) {
    auto h = mid_block->forward(conv_in->forward(z));
    for (const auto& block : *up_blocks) h = block->as<SamplingBlockImpl>()->forward(h);
    return conv_out->forward(torch::silu(conv_norm_out->forward(h)));
  }
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  MidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VaeDecoder);

AutoencoderKLImpl::AutoencoderKLImpl(const AutoencoderKLOptions& options) : options_(options) {
  const auto& o = options_;
  if (o.block_out_channels.empty() || o.in_channels < 1 || o.out_channels < 1 || o.latent_channels < 1 ||
      o.layers_per_block < 1 || o.norm_num_groups < 1)
    throw ConfigError("vae: block_out_channels must be non-empty and in/out/latent channels, layers_per_block and "
                      "norm_num_groups at least 1");
  for (int c : o.block_out_channels)
    if (c < 1 || c % o.norm_num_groups != 0)
      throw ConfigError("vae: every block_out_channels entry must be a positive multiple of norm_num_groups (" +
                        std::to_string(o.norm_num_groups) + "), found " + std::to_string(c));
  encoder_ = register_module("encoder", VaeEncoder(o));
  decoder_ = register_module("decoder", VaeDecoder(o));
  quant_conv_ = register_module(
      "quant_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(2 * o.latent_channels, 2 * o.latent_channels, 1)));
  post_quant_conv_ = register_module(
      "post_quant_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.latent_channels, o.latent_channels, 1)));
}

std::pair<torch::Tensor, torch::Tensor> AutoencoderKLImpl::encode(const torch::Tensor& images) {
  const auto f = downsampling();
  if (images.dim() != 4 || images.size(1) != options_.in_channels || images.size(2) % f || images.size(3) % f)
    throw DataError("vae: expected images [B, " + std::to_string(options_.in_channels) +
                    ", H, W] with H and W multiples of " + std::to_string(f) + ", found " + shape_text(images.sizes()));
  const auto moments = quant_conv_->forward(encoder_->forward(images)).chunk(2, 1);
  return {moments[0], moments[1]};
}

torch::Tensor AutoencoderKLImpl::decode(const torch::Tensor& latents) {
  if (latents.dim() != 4 || latents.size(1) != options_.latent_channels)
    throw DataError("vae: expected latents [B, " + std::to_string(options_.latent_channels) + ", h, w], found " +
                    shape_text(latents.sizes()));
  return decoder_->forward(post_quant_conv_->forward(latents));
}

namespace {

// `fn` over `inputs` in batches of `batch_size` on `device`, without gradients, gathered on the CPU.
template <class Fn>
torch::Tensor map_in_batches(const torch::Tensor& inputs, int64_t batch_size, torch::Device device, Fn fn) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> outputs;
  for (int64_t begin = 0; begin < inputs.size(0); begin += batch_size)
    outputs.push_back(
        fn(inputs.narrow(0, begin, std::min(batch_size, inputs.size(0) - begin)).to(device, torch::kFloat32)).cpu());
  return torch::cat(outputs);
}

}  // namespace

torch::Tensor encode_images(AutoencoderKL& vae, const torch::Tensor& images, int64_t batch_size, torch::Device device) {
  return map_in_batches(images, batch_size, device, [&](const torch::Tensor& batch) { return vae->encode_scaled(batch); });
}

torch::Tensor decode_latents(AutoencoderKL& vae, const torch::Tensor& latents, int64_t batch_size, torch::Device device) {
  return map_in_batches(latents, batch_size, device,
                        [&](const torch::Tensor& batch) { return vae->decode_scaled(batch).clamp(-1.0, 1.0); });
}

}  // namespace diffuse
