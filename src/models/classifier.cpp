// Noise-conditional classifier: the UNet's encoder half with attention pooling (ADM's
// EncoderUNetModel, Dhariwal & Nichol 2021).
#include "diffuse/models/classifier.h"

#include <cmath>
#include <string>

#include "diffuse/core/error.h"
#include "unet_blocks.h"

namespace diffuse {
namespace {

using namespace unet_blocks;

// ADM's AttentionPool2d: the mean of the H·W positions is prepended as a query token, a
// learned position embedding is added to all HW + 1 tokens, multi-head self-attention runs
// over them and the first token is the pooled feature; a 1×1 projection maps it to logits.
class AttentionPoolImpl : public torch::nn::Module {
 public:
  AttentionPoolImpl(int64_t positions, int64_t channels, int64_t heads, int64_t outputs) : heads_(heads) {
    position_ = register_parameter("position", torch::randn({channels, positions + 1}) / std::sqrt(static_cast<double>(channels)));
    qkv_ = register_module("qkv", torch::nn::Conv1d(torch::nn::Conv1dOptions(channels, 3 * channels, 1)));
    proj_ = register_module("proj", torch::nn::Conv1d(torch::nn::Conv1dOptions(channels, outputs, 1)));
  }

  // [B, C, H, W] → pooled [B, C] (before the projection).
  torch::Tensor pool(const torch::Tensor& x) {
    const int64_t B = x.size(0), C = x.size(1);
    auto tokens = x.reshape({B, C, -1});                                        // [B, C, N]
    tokens = torch::cat({tokens.mean(-1, /*keepdim=*/true), tokens}, -1);       // [B, C, N+1]
    tokens = tokens + position_.unsqueeze(0).to(tokens.scalar_type());
    const int64_t n = tokens.size(2), d = C / heads_;
    auto qkv = qkv_(tokens).reshape({B, 3, heads_, d, n}).permute({1, 0, 2, 4, 3});  // [3, B, h, N+1, d]
    auto out = compat::scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]);         // [B, h, N+1, d]
    return out.select(2, 0).reshape({B, C});                                         // token 0: [B, C]
  }
  torch::Tensor project(const torch::Tensor& pooled) { return proj_(pooled.unsqueeze(-1)).squeeze(-1); }

 private:
  int64_t heads_;
  torch::Tensor position_;
  torch::nn::Conv1d qkv_{nullptr};
  torch::nn::Conv1d proj_{nullptr};
};
TORCH_MODULE(AttentionPool);

class EncoderClassifierImpl final : public ClassifierNet {
 public:
  EncoderClassifierImpl(const ModelOptions& options, const UNetLayout& layout) : options_(options) {
    const UNetOptions& u = options.unet;
    const int64_t base = u.base_channels;
    const int64_t emb_channels = 4 * base;
    const BlockFactory make(u, emb_channels);
    time_embed_ = register_noise_embedding(*this, base, emb_channels);
    input_conv_ = register_module("input_conv", conv3x3(options.in_channels, base));
    auto list = register_module("input_blocks", torch::nn::ModuleList());
    EncoderBlocks encoder = make_encoder_blocks(u, layout, make);
    for (auto& block : encoder.blocks) list->push_back(block);
    input_blocks_ = std::move(encoder.blocks);
    const int64_t ch = encoder.channels.back();
    middle_in_ = register_module("middle_in", make.res(ch, ch));
    middle_attention_ = register_module("middle_attention", make.attention(ch, u.middle_attention_norm));
    middle_out_ = register_module("middle_out", make.res(ch, ch));
    out_norm_ = register_module("out_norm", group_norm(u.num_groups, ch, u.norm_eps));
    const int64_t side = layout.level_sizes.back();
    pool_ = register_module("pool", AttentionPool(side * side, ch, heads_for(u, ch), options.num_classes));
  }

  torch::Tensor features(const torch::Tensor& x, const torch::Tensor& noise_cond) override {
    if (x.dim() != 4 || x.size(1) != options_.in_channels || noise_cond.dim() != 1 ||
        noise_cond.size(0) != x.size(0))
      throw DataError("classifier: expected x [B, " + std::to_string(options_.in_channels) +
                      ", H, W] and noise_cond [B], got " + shape_of(x) + " and " + shape_of(noise_cond));
    const auto emb = time_embed_.forward(noise_cond, options_);                // [B, 4·base]
    auto h = input_conv_(x);                                                    // [B, base, H, W]
    for (auto& block : input_blocks_) h = block->forward(h, emb, {});           // [B, C_l, H_l, W_l]
    h = middle_out_(middle_attention_(middle_in_(h, emb)), emb);                // [B, C, h, w]
    return pool_->pool(F::silu(out_norm_(h)));                                  // [B, C]
  }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_cond) override {
    return logits_of(features(x, noise_cond));                                  // [B, K]
  }
  torch::Tensor logits_of(const torch::Tensor& features) override { return pool_->project(features); }

  const ModelOptions& options() const override { return options_; }

 private:
  ModelOptions options_;
  NoiseEmbedding time_embed_;
  torch::nn::Conv2d input_conv_{nullptr};
  std::vector<UNetBlock> input_blocks_;
  ResBlock middle_in_{nullptr};
  AttentionBlock middle_attention_{nullptr};
  ResBlock middle_out_{nullptr};
  torch::nn::GroupNorm out_norm_{nullptr};
  AttentionPool pool_{nullptr};
};
TORCH_MODULE(EncoderClassifier);

}  // namespace

std::shared_ptr<ClassifierNet> make_classifier(const ModelOptions& options) {
  if (options.num_classes < 1)
    throw ConfigError("model.arch classifier needs class labels: model.num_classes must be >= 1 "
                      "(-1 takes them from the dataset), found " + std::to_string(options.num_classes));
  const UNetLayout layout = validate_options(options);
  return EncoderClassifier(options, layout).ptr();
}

}  // namespace diffuse
