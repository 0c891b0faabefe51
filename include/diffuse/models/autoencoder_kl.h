#pragma once
// The KL autoencoder of latent diffusion (Rombach et al. 2022, §3; the "SD VAE" that DiT and
// most latent models use), built as diffusers' AutoencoderKL so that its weights load by
// name: encoder (conv_in, down_blocks.i.{resnets, downsamplers}, mid_block with one
// single-head attention, conv_norm_out, conv_out) → quant_conv → [mean | log variance];
// post_quant_conv → decoder (conv_in, mid_block, up_blocks.i.{resnets, upsamplers},
// conv_norm_out, conv_out). Latents for the diffusion model are scaling_factor × the mean.
#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace diffuse {

class VaeEncoderImpl;
class VaeDecoderImpl;

struct AutoencoderKLOptions {
  int in_channels = 3;
  int out_channels = 3;
  std::vector<int> block_out_channels{128, 256, 512, 512};  // sd-vae-ft-ema / SD 1.x
  int layers_per_block = 2;
  int latent_channels = 4;
  int norm_num_groups = 32;
  double scaling_factor = 0.18215;
};

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const AutoencoderKLOptions& options);

  // images [B, in, H, W] in [-1, 1] → the posterior's mean and log variance [B, latent, H/f, W/f],
  // f = 2^(levels - 1). Unscaled (multiply by scaling_factor for the diffusion model).
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& images);
  // Unscaled latents [B, latent, h, w] → images [B, out, h·f, w·f].
  torch::Tensor decode(const torch::Tensor& latents);

  // The diffusion model's latents of `images` (scaling_factor × mean), and back to images.
  torch::Tensor encode_scaled(const torch::Tensor& images) { return encode(images).first * options_.scaling_factor; }
  torch::Tensor decode_scaled(const torch::Tensor& latents) { return decode(latents / options_.scaling_factor); }

  const AutoencoderKLOptions& options() const { return options_; }
  // Spatial down-sampling factor f.
  int64_t downsampling() const { return int64_t{1} << (options_.block_out_channels.size() - 1); }

 private:
  AutoencoderKLOptions options_;
  std::shared_ptr<VaeEncoderImpl> encoder_;
  std::shared_ptr<VaeDecoderImpl> decoder_;
  torch::nn::Conv2d quant_conv_{nullptr}, post_quant_conv_{nullptr};
};
TORCH_MODULE(AutoencoderKL);

// The diffusion model's latents (scaled) of images [N, in, H, W] in [-1, 1], encoded on
// `device` in batches of `batch_size`, on the CPU.
torch::Tensor encode_images(AutoencoderKL& vae, const torch::Tensor& images, int64_t batch_size, torch::Device device);

// Pictures in [-1, 1] (on the CPU) of the diffusion model's latents [N, latent, h, w]
// (scaled, as decode_scaled takes them), decoded on `device` in batches of `batch_size`.
torch::Tensor decode_latents(AutoencoderKL& vae, const torch::Tensor& latents, int64_t batch_size, torch::Device device);

}  // namespace diffuse
