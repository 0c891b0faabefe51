#include "diffuse/models/embeddings.h"

#include <cmath>

namespace diffuse {

torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  auto freqs = torch::exp(-std::log(max_period) *
                          torch::arange(half, t.options().dtype(torch::kFloat32)) /
                          static_cast<double>(half));
  auto args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);  // [B, half]
  auto emb = torch::cat({torch::cos(args), torch::sin(args)}, 1);       // [B, 2·half]
  if (dim % 2) emb = torch::cat({emb, torch::zeros_like(emb.slice(1, 0, 1))}, 1);
  return emb;
}

}  // namespace diffuse
