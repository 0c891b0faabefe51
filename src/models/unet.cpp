// ADM/DDPM-style UNet: Ho et al. 2020 (DDPM, Appendix B) as generalised by Dhariwal &
// Nichol 2021 (ADM, "guided-diffusion" unet.py): the network over the blocks of
// unet_blocks.h (residual block, attention, resampling, one encoder/decoder entry) and the
// factory.
#include "diffuse/models/unet.h"

#include <string>
#include <vector>

#include "diffuse/core/error.h"
#include "unet_blocks.h"

namespace diffuse {
namespace {

using namespace unet_blocks;

class UNetImpl final : public DiffusionNet {
 public:
  UNetImpl(const ModelOptions& options, const UNetLayout& layout) : options_(options) {
    const UNetOptions& u = options.unet;
    const int64_t base = u.base_channels;
    const int64_t emb_channels = 4 * base;
    const int64_t out_channels = options.in_channels * (options.learn_sigma ? 2 : 1);
    const BlockFactory make(u, emb_channels);

    // Noise embedding (DDPM App. B): sinusoid(c_noise) → Linear → SiLU → Linear, width 4·base.
    time_embed_ = register_noise_embedding(*this, base, emb_channels);
    // Class embedding added to it (ADM); row num_classes is the null label for CFG.
    if (options.num_classes > 0)
      label_embed_ = register_module(
          "label_embed", torch::nn::Embedding(options.num_classes + 1, emb_channels));

    input_conv_ = register_module("input_conv", conv3x3(options.in_channels, base));
    input_list_ = register_module("input_blocks", torch::nn::ModuleList());
    output_list_ = register_module("output_blocks", torch::nn::ModuleList());

    EncoderBlocks encoder = make_encoder_blocks(u, layout, make);
    for (auto& block : encoder.blocks) add_input(block);
    std::vector<int64_t> skip_channels = encoder.channels;
    int64_t ch = skip_channels.back();

    middle_in_ = register_module("middle_in", make.res(ch, ch));
    middle_attention_ = register_module("middle_attention", make.attention(ch, u.middle_attention_norm));
    middle_out_ = register_module("middle_out", make.res(ch, ch));

    const int64_t levels = static_cast<int64_t>(u.channel_mult.size());
    for (int64_t level = levels - 1; level >= 0; --level) {
      const int64_t size = layout.level_sizes[static_cast<size_t>(level)];
      for (int i = 0; i <= u.num_res_blocks; ++i) {
        const int64_t out = base * u.channel_mult[static_cast<size_t>(level)];
        ResBlock res = make.res(ch + skip_channels.back(), out);
        skip_channels.pop_back();
        ch = out;
        AttentionBlock attn = has_attention(u, size) ? make.attention(ch) : nullptr;
        const bool ends_level = level > 0 && i == u.num_res_blocks;
        if (ends_level && u.resblock_updown) {
          add_output(UNetBlock(res, attn, make.res(ch, ch, Resample::up), nullptr));
        } else if (ends_level) {
          add_output(UNetBlock(res, attn, nullptr, ConvResample(ch, Resample::up)));
        } else {
          add_output(UNetBlock(res, attn, nullptr, nullptr));
        }
      }
    }

    out_norm_ = register_module("out_norm", group_norm(u.num_groups, ch, u.norm_eps));
    out_conv_ = register_module("out_conv", zero_init(conv3x3(ch, out_channels)));
  }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_cond,
                        const torch::Tensor& labels) override {
    check_inputs(x, noise_cond, labels);
    auto emb = time_embed_.forward(noise_cond, options_);                  // [B, 4·base]
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
  NoiseEmbedding time_embed_;
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
TORCH_MODULE(UNet);

}  // namespace

std::shared_ptr<DiffusionNet> make_unet(const ModelOptions& options) {
  const UNetLayout layout = validate_options(options);
  return UNet(options, layout).ptr();
}

}  // namespace diffuse
