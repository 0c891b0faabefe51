// The DiT block's self-attention (dit_attention.h).
#include "dit_attention.h"

#include "diffuse/core/compat.h"

namespace diffuse {

DiTAttentionImpl::DiTAttentionImpl(int64_t hidden_size, int64_t num_heads)
    : qkv(register_module("qkv", torch::nn::Linear(hidden_size, 3 * hidden_size))),
      proj(register_module("proj", torch::nn::Linear(hidden_size, hidden_size))),
      num_heads_(num_heads) {}

torch::Tensor DiTAttentionImpl::forward(const torch::Tensor& x) {
  return forward_with(x, compat::scaled_dot_product_attention);
}

torch::Tensor DiTAttentionImpl::forward_with(const torch::Tensor& x, AttentionKernel kernel) {
  const int64_t batch = x.size(0), tokens = x.size(1), hidden = x.size(2);
  auto qkv_heads = qkv->forward(x)                                         // [B, N, 3D]
                       .reshape({batch, tokens, 3, num_heads_, hidden / num_heads_})
                       .permute({2, 0, 3, 1, 4});                          // [3, B, heads, N, D/heads]
  auto attended = kernel(qkv_heads[0], qkv_heads[1], qkv_heads[2]);       // [B, heads, N, D/heads]
  return proj->forward(attended.transpose(1, 2).reshape({batch, tokens, hidden}));  // [B, N, D]
}

}  // namespace diffuse
