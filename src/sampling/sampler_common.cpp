#include "diffuse/sampling/sampler_common.h"

#include <algorithm>
#include <cmath>

namespace diffuse {

torch::Tensor to_d(const torch::Tensor& x, double sigma, const torch::Tensor& denoised) {
  return (x - denoised) / sigma;
}

AncestralSigmas ancestral_sigmas(double sigma, double sigma_next, double eta) {
  if (sigma_next <= 0.0 || eta <= 0.0) return {sigma_next, 0.0};
  const double up = std::min(
      sigma_next,
      eta * std::sqrt(sigma_next * sigma_next * (sigma * sigma - sigma_next * sigma_next) / (sigma * sigma)));
  return {std::sqrt(std::max(sigma_next * sigma_next - up * up, 0.0)), up};
}

torch::Tensor sigma_batch(const torch::Tensor& x, double sigma) {
  return torch::full({x.size(0)}, sigma, x.options().dtype(torch::kFloat32));
}

}  // namespace diffuse
