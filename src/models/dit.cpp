// Diffusion Transformer (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers"),
// following the reference models.py: patchify → N adaLN-Zero blocks conditioned on
// c = t_emb + y_emb → adaLN final layer → unpatchify.
//
// Shapes: B batch, C in_channels, H = W = image_size, p patch_size, g = H / p patches per
// side, N = g² tokens, D hidden_size.
#include "diffuse/models/dit.h"

#include <string>
#include <vector>

#include "diffuse/core/error.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/core/text.h"
#include "diffuse/models/embeddings.h"
#include "dit_attention.h"

namespace diffuse {
namespace {

// DiT's TimestepEmbedder: sinusoidal features of this size feed the timestep MLP.
constexpr int64_t kTimestepFeatures = 256;
// LayerNorm ε of the reference implementation.
constexpr double kLayerNormEps = 1e-6;

// Blocks normalise without affine parameters: the adaLN modulation supplies scale and shift.
torch::nn::LayerNorm plain_layer_norm(int64_t dim, double eps = kLayerNormEps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).elementwise_affine(false).eps(eps));
}

// adaLN (Peebles & Xie §3.2): per-sample scale and shift regressed from c, broadcast over tokens.
torch::Tensor modulate(const torch::Tensor& x, const torch::Tensor& shift,
                       const torch::Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);  // [B, N, D]
}

// 1-D sin-cos embedding of positions [M] into [M, dim]: [sin(m ω_i) | cos(m ω_i)],
// ω_i = 10000^(-i / (dim/2)) (MAE's get_1d_sincos_pos_embed_from_grid).
torch::Tensor sincos_embedding_1d(const torch::Tensor& positions, int64_t dim) {
  const int64_t half = dim / 2;
  auto exponents = torch::arange(half, torch::kFloat64) / static_cast<double>(half);  // [dim/2]
  auto omega = torch::pow(10000.0, -exponents);                                       // [dim/2]
  auto angles = positions.to(torch::kFloat64).unsqueeze(1) * omega.unsqueeze(0);  // [M, dim/2]
  return torch::cat({angles.sin(), angles.cos()}, 1);                              // [M, dim]
}

// Fixed 2-D sin-cos position embedding (MAE / DiT get_2d_sincos_pos_embed) for a g×g grid of
// tokens in row-major order: the first half of the dims encodes the column, the second
// half the row, exactly as the reference does (its meshgrid puts the w coordinate first).
torch::Tensor sincos_embedding_2d(int64_t grid, int64_t dim) {
  auto row = torch::arange(grid, torch::kInt64).repeat_interleave(grid);  // [N]: 0,0,…,1,1,…
  auto column = torch::arange(grid, torch::kInt64).repeat({grid});        // [N]: 0,1,…,0,1,…
  return torch::cat({sincos_embedding_1d(column, dim / 2), sincos_embedding_1d(row, dim / 2)}, 1)
      .to(torch::kFloat32);  // [N, D]
}

// Embeds the noise condition (t or c_noise) into [B, D]: sinusoid → Linear → SiLU → Linear.
class TimestepEmbedderImpl : public torch::nn::Module {
 public:
  TimestepEmbedderImpl(int64_t hidden_size, const TimestepFeatures& features)
      : mlp(register_module("mlp", torch::nn::Sequential(
                                       torch::nn::Linear(kTimestepFeatures, hidden_size),
                                       torch::nn::SiLU(),
                                       torch::nn::Linear(hidden_size, hidden_size)))),
        features_(features) {}

  torch::Tensor forward(const torch::Tensor& noise_cond) {
    return mlp->forward(sinusoidal_embedding(noise_cond, kTimestepFeatures, features_));  // [B, D]
  }

  torch::nn::Sequential mlp;

 private:
  TimestepFeatures features_;
};
TORCH_MODULE(TimestepEmbedder);

// One DiT block with adaLN-Zero (§3.2): c regresses shift/scale for both LayerNorms and a
// gate on each residual branch; the regression is zero-initialised, so every block
// starts as the identity.
class DiTBlockImpl : public torch::nn::Module {
 public:
  DiTBlockImpl(int64_t hidden_size, const DiTOptions& dit) {
    const auto mlp_hidden = static_cast<int64_t>(static_cast<double>(hidden_size) * dit.mlp_ratio);
    norm1 = register_module("norm1", plain_layer_norm(hidden_size));
    attn = register_module("attn", DiTAttention(hidden_size, dit.num_heads));
    norm2 = register_module("norm2", plain_layer_norm(hidden_size, dit.mlp_norm_eps));
    mlp = register_module("mlp", torch::nn::Sequential(
                                     torch::nn::Linear(hidden_size, mlp_hidden),
                                     torch::nn::GELU(torch::nn::GELUOptions().approximate("tanh")),
                                     torch::nn::Linear(mlp_hidden, hidden_size)));
    adaln_modulation = register_module(
        "adaln_modulation",
        torch::nn::Sequential(torch::nn::SiLU(), torch::nn::Linear(hidden_size, 6 * hidden_size)));
  }

  // x: [B, N, D], c: [B, D] → [B, N, D]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c) {
    auto m = adaln_modulation->forward(c).chunk(6, 1);  // 6 × [B, D]
    const auto& shift_msa = m[0], & scale_msa = m[1], & gate_msa = m[2];
    const auto& shift_mlp = m[3], & scale_mlp = m[4], & gate_mlp = m[5];
    auto attended = attn->forward(modulate(norm1->forward(x), shift_msa, scale_msa));  // [B, N, D]
    auto h = x + gate_msa.unsqueeze(1) * attended;                                      // [B, N, D]
    auto mlp_out = mlp->forward(modulate(norm2->forward(h), shift_mlp, scale_mlp));      // [B, N, D]
    return h + gate_mlp.unsqueeze(1) * mlp_out;                                         // [B, N, D]
  }

  torch::nn::LayerNorm norm1{nullptr};
  DiTAttention attn{nullptr};
  torch::nn::LayerNorm norm2{nullptr};
  torch::nn::Sequential mlp{nullptr};
  torch::nn::Sequential adaln_modulation{nullptr};
};
TORCH_MODULE(DiTBlock);

// Final layer: adaLN (shift, scale) then a zero-initialised Linear to p·p·out_channels per token.
class FinalLayerImpl : public torch::nn::Module {
 public:
  FinalLayerImpl(int64_t hidden_size, int64_t patch_size, int64_t out_channels)
      : norm_final(register_module("norm_final", plain_layer_norm(hidden_size))),
        linear(register_module(
            "linear", torch::nn::Linear(hidden_size, patch_size * patch_size * out_channels))),
        adaln_modulation(register_module(
            "adaln_modulation", torch::nn::Sequential(torch::nn::SiLU(),
                                                      torch::nn::Linear(hidden_size, 2 * hidden_size)))) {}

  // x: [B, N, D], c: [B, D] → [B, N, p·p·out_channels]
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& c) {
    auto m = adaln_modulation->forward(c).chunk(2, 1);  // shift, scale: 2 × [B, D]
    return linear->forward(modulate(norm_final->forward(x), m[0], m[1]));  // [B, N, p·p·out]
  }

  torch::nn::LayerNorm norm_final;
  torch::nn::Linear linear;
  torch::nn::Sequential adaln_modulation;
};
TORCH_MODULE(FinalLayer);

std::string divisors_text(int64_t n) {
  std::vector<int64_t> divisors;
  for (int64_t d = 1; d <= n; ++d)
    if (n % d == 0) divisors.push_back(d);
  return join(divisors, ", ");
}

// Checks that the options describe a buildable DiT, naming the config keys when not.
void check_dit_options(const ModelOptions& o) {
  const DiTOptions& d = o.dit;
  if (o.in_channels < 1 || o.image_size < 1 || o.num_classes < 0)
    throw ConfigError("DiT: model options are not resolved (model.in_channels " +
                      std::to_string(o.in_channels) + ", model.image_size " +
                      std::to_string(o.image_size) + ", model.num_classes " +
                      std::to_string(o.num_classes) + "); call resolve_model_options first");
  // The ranges of the config parser, then what depends on the image size and the position
  // embedding.
  dit_options_schema().validate(d, "model.dit");
  if (o.image_size % d.patch_size != 0)
    throw ConfigError("model.dit.patch_size " + std::to_string(d.patch_size) +
                      " does not divide model.image_size " + std::to_string(o.image_size) +
                      ": DiT cuts the image into whole patches; use a patch size that divides it (" +
                      divisors_text(o.image_size) + ") or change model.image_size / data.resolution");
  if (d.hidden_size < 4 || d.hidden_size % 4 != 0)
    throw ConfigError("model.dit.hidden_size: must be a positive multiple of 4 (the 2-D sin-cos "
                      "position embedding splits it into row and column sin/cos halves), found " +
                      std::to_string(d.hidden_size));
}

class DiTImpl final : public DiffusionNet {
 public:
  explicit DiTImpl(const ModelOptions& options)
      : options_(options),
        out_channels_(options.learn_sigma ? 2 * options.in_channels : options.in_channels),
        grid_(options.image_size / options.dit.patch_size) {
    const int64_t hidden = options.dit.hidden_size, patch = options.dit.patch_size;
    x_embedder_ = register_module(
        "x_embedder",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels, hidden, patch).stride(patch)));
    // Fixed, not trained (DiT §3.1, following MAE): a buffer, saved with the model.
    pos_embed_ = register_buffer("pos_embed", sincos_embedding_2d(grid_, hidden).unsqueeze(0));  // [1, N, D]
    t_embedder_ = register_module("t_embedder", TimestepEmbedder(hidden, options.timestep));
    if (options.num_classes > 0)
      // Index num_classes is the null label that classifier-free guidance trains through dropout.
      y_embedder_ = register_module("y_embedder", torch::nn::Embedding(options.num_classes + 1, hidden));
    auto block_list = register_module("blocks", torch::nn::ModuleList());
    for (int i = 0; i < options.dit.depth; ++i) {
      blocks_.push_back(DiTBlock(hidden, options.dit));
      block_list->push_back(blocks_.back());
    }
    final_layer_ = register_module("final_layer", FinalLayer(hidden, patch, out_channels_));
    initialize_weights();
  }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_cond,
                        const torch::Tensor& labels) override {
    check_inputs(x, noise_cond, labels);
    const int64_t batch = x.size(0), patch = options_.dit.patch_size;
    auto tokens = x_embedder_->forward(x).flatten(2).transpose(1, 2) + pos_embed_;  // [B, N, D]
    auto c = t_embedder_->forward(noise_cond);                                       // [B, D]
    if (y_embedder_) c = c + y_embedder_->forward(labels);                           // [B, D]
    for (auto& block : blocks_) tokens = block->forward(tokens, c);                  // [B, N, D]
    auto patches = final_layer_->forward(tokens, c);                                 // [B, N, p·p·out]
    return patches.reshape({batch, grid_, grid_, patch, patch, out_channels_})  // [B, g, g, p, p, out]
        .permute({0, 5, 1, 3, 2, 4})                                            // [B, out, g, p, g, p]
        .reshape({batch, out_channels_, grid_ * patch, grid_ * patch});         // [B, out, H, W]
  }

  const ModelOptions& options() const override { return options_; }

 private:
  // DiT's initialize_weights: xavier-uniform Linear layers with zero bias; the patch
  // embedding as a Linear over its flattened kernel; N(0, 0.02²) label and timestep
  // embeddings; adaLN modulations and the output Linear zero (adaLN-Zero, §3.2).
  void initialize_weights() {
    torch::NoGradGuard no_grad;
    for (const auto& module : modules(/*include_self=*/false)) {
      if (auto* linear = module->as<torch::nn::LinearImpl>()) {
        torch::nn::init::xavier_uniform_(linear->weight);
        torch::nn::init::zeros_(linear->bias);
      }
    }
    const auto& patch_weight = x_embedder_->weight;
    torch::nn::init::xavier_uniform_(patch_weight.view({patch_weight.size(0), -1}));
    torch::nn::init::zeros_(x_embedder_->bias);
    if (y_embedder_) torch::nn::init::normal_(y_embedder_->weight, 0.0, 0.02);
    for (const size_t i : {0, 2})
      torch::nn::init::normal_(t_embedder_->mlp[i]->as<torch::nn::LinearImpl>()->weight, 0.0, 0.02);
    auto zero_linear = [](torch::nn::LinearImpl* linear) {
      torch::nn::init::zeros_(linear->weight);
      torch::nn::init::zeros_(linear->bias);
    };
    for (auto& block : blocks_) zero_linear(block->adaln_modulation[1]->as<torch::nn::LinearImpl>());
    zero_linear(final_layer_->adaln_modulation[1]->as<torch::nn::LinearImpl>());
    zero_linear(final_layer_->linear.get());
  }

  void check_inputs(const torch::Tensor& x, const torch::Tensor& noise_cond,
                    const torch::Tensor& labels) const {
    const auto& o = options_;
    if (x.dim() != 4 || x.size(1) != o.in_channels || x.size(2) != o.image_size ||
        x.size(3) != o.image_size)
      throw DataError("DiT: input of shape " + shape_text(x.sizes()) + " does not fit the model, which expects [B, " +
                      std::to_string(o.in_channels) + ", " + std::to_string(o.image_size) + ", " +
                      std::to_string(o.image_size) + "] (model.in_channels, model.image_size)");
    if (noise_cond.dim() != 1 || noise_cond.size(0) != x.size(0))
      throw DataError("DiT: noise_cond must have shape [" + std::to_string(x.size(0)) +
                      "] (one value per sample), found " + shape_text(noise_cond.sizes()));
    if (o.num_classes > 0 && !labels.defined())
      throw DataError("DiT: the model is class-conditional (model.num_classes " +
                        std::to_string(o.num_classes) + ") but forward got no labels; pass [B] int64 "
                        "labels in [0, " + std::to_string(o.num_classes) + "], " +
                        std::to_string(o.num_classes) + " being the null (unconditional) class");
    if (o.num_classes == 0 && labels.defined())
      throw DataError("DiT: the model is unconditional (model.num_classes 0) but forward got labels; "
                        "pass an undefined tensor, or build the model with model.num_classes > 0");
    if (labels.defined() && (labels.dim() != 1 || labels.size(0) != x.size(0) ||
                             labels.scalar_type() != torch::kInt64))
      throw DataError("DiT: labels must be an int64 tensor of shape [" + std::to_string(x.size(0)) +
                      "], found " + shape_text(labels.sizes()) + " of type " +
                      std::string(c10::toString(labels.scalar_type())));
  }

  ModelOptions options_;
  int64_t out_channels_;
  int64_t grid_;
  torch::nn::Conv2d x_embedder_{nullptr};
  torch::Tensor pos_embed_;
  TimestepEmbedder t_embedder_{nullptr};
  torch::nn::Embedding y_embedder_{nullptr};
  std::vector<DiTBlock> blocks_;
  FinalLayer final_layer_{nullptr};
};
TORCH_MODULE(DiT);

}  // namespace

std::shared_ptr<DiffusionNet> make_dit(const ModelOptions& options) {
  check_dit_options(options);
  return DiT(options).ptr();
}

}  // namespace diffuse
