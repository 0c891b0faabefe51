#pragma once
// Embeddings shared by the architectures of the zoo.
#include <torch/torch.h>

#include "diffuse/models/model_options.h"

namespace diffuse {

// Sinusoidal embedding of a [B] float tensor (timestep t or c_noise) into [B, dim]
// (Vaswani et al. 2017 §3.5): with h = dim/2 and f_i = max_period^(-i/(h - freq_shift)),
// [cos(t·f_0) … cos(t·f_{h-1}), sin(t·f_0) … sin(t·f_{h-1})] (ADM, the DiT repository: the
// default), or [sin | cos] (DDPM). DDPM's code and diffusers' DiT use freq_shift 1, so that
// the lowest frequency is exactly 1/max_period. Odd dims get one zero column.
torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim, const TimestepFeatures& features = {},
                                   double max_period = 10000.0);

}  // namespace diffuse
