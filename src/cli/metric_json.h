#pragma once
// Per-image quality figures (PSNR, SSIM) as JSON for the commands that report them (restore,
// invert). PSNR of identical images is +inf, which JSON cannot hold.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>

namespace diffuse::cli {

// A JSON number; non-finite values become null.
inline nlohmann::json json_number(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json();
}

// The mean of the finite entries of a [N] tensor (NaN when there are none).
inline double finite_mean(const torch::Tensor& values) {
  double sum = 0.0;
  int64_t count = 0;
  for (int64_t k = 0; k < values.size(0); ++k) {
    const double v = values[k].item<double>();
    if (!std::isfinite(v)) continue;
    sum += v;
    ++count;
  }
  return count ? sum / static_cast<double>(count) : std::nan("");
}

}  // namespace diffuse::cli
