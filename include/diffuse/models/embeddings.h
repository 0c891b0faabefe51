#pragma once
// Embeddings shared by the architectures of the zoo.
#include <torch/torch.h>

namespace diffuse {

// Sinusoidal embedding of a [B] float tensor (timestep t or c_noise) into [B, dim]:
// [cos(t·f_0) … cos(t·f_{h-1}), sin(t·f_0) … sin(t·f_{h-1})], f_i = max_period^(-i/h), h = dim/2
// (Vaswani et al. 2017 §3.5, as used by DDPM/ADM and DiT). Odd dims get one zero column.
torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim, double max_period = 10000.0);

}  // namespace diffuse
