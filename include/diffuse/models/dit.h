#pragma once
// Diffusion Transformer (Peebles & Xie 2023) with adaLN-Zero blocks.
#include <torch/torch.h>

#include <memory>

#include "diffuse/models/diffusion_net.h"

namespace diffuse {

// Builds a DiT from resolved options (ModelOptions::dit plus in_channels, image_size,
// num_classes, learn_sigma). Throws ConfigError naming the key when options do not fit
// (image_size not divisible by patch_size, hidden_size not divisible by num_heads or by 4).
//
// Parameter names follow the reference implementation (facebookresearch/DiT models.py):
// x_embedder, t_embedder.mlp, y_embedder.embedding_table, blocks.i.{attn,mlp,adaln_modulation},
// final_layer.{adaln_modulation,linear}; the fixed position embedding is the buffer pos_embed.
std::shared_ptr<DiffusionNet> make_dit(const ModelOptions& options);

// softmax(q kᵀ / √d) v over [B, H, N, d] tensors; compat::scaled_dot_product_attention or
// compat::reference_attention.
using AttentionKernel = torch::Tensor (*)(const torch::Tensor& q, const torch::Tensor& k,
                                          const torch::Tensor& v);

// Multi-head self-attention of a DiT block: qkv Linear (with bias) → per-head attention →
// output projection. Exposed so tests can check it against other attention implementations.
class DiTAttentionImpl : public torch::nn::Module {
 public:
  DiTAttentionImpl(int64_t hidden_size, int64_t num_heads);

  // x: [B, N, hidden] → [B, N, hidden], using compat::scaled_dot_product_attention.
  torch::Tensor forward(const torch::Tensor& x);
  // Same with an explicit attention kernel.
  torch::Tensor forward_with(const torch::Tensor& x, AttentionKernel kernel);

  torch::nn::Linear qkv{nullptr};
  torch::nn::Linear proj{nullptr};

 private:
  int64_t num_heads_;
};
TORCH_MODULE(DiTAttention);

}  // namespace diffuse
