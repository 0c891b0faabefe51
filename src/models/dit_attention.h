#pragma once
// The multi-head self-attention of a DiT block (dit.cpp). Private to the library: a user
// reaches it only through make_dit; it has a header of its own so that tests can check it
// against other attention implementations.
#include <torch/torch.h>

#include <cstdint>

namespace diffuse {

// softmax(q kᵀ / √d) v over [B, H, N, d] tensors; compat::scaled_dot_product_attention or
// compat::reference_attention.
using AttentionKernel = torch::Tensor (*)(const torch::Tensor& q, const torch::Tensor& k,
                                          const torch::Tensor& v);

// qkv Linear (with bias) → per-head attention → output projection, with the reference
// implementation's parameter names (attn.qkv, attn.proj).
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
