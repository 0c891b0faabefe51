#include "diffuse/models/embeddings.h"

#include <cmath>
#include <string>

#include "diffuse/core/error.h"

namespace diffuse {

torch::Tensor sinusoidal_embedding(const torch::Tensor& t, int64_t dim, const TimestepFeatures& features,
                                   double max_period) {
  const int64_t half = dim / 2;
  if (features.freq_shift > 0 && half <= features.freq_shift)
    throw ConfigError("model.timestep.freq_shift " + std::to_string(features.freq_shift) + " needs at least " +
                      std::to_string(2 * (features.freq_shift + 1)) + " embedding channels, found " + std::to_string(dim));
  auto freqs = torch::exp(-std::log(max_period) * torch::arange(half, t.options().dtype(torch::kFloat32)) /
                          static_cast<double>(half - features.freq_shift));
  auto args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);  // [B, half]
  auto emb = features.order == TimestepOrder::cos_sin ? torch::cat({torch::cos(args), torch::sin(args)}, 1)
                                                      : torch::cat({torch::sin(args), torch::cos(args)}, 1);  // [B, 2·half]
  if (dim % 2) emb = torch::cat({emb, torch::zeros_like(emb.slice(1, 0, 1))}, 1);
  return emb;
}

}  // namespace diffuse
