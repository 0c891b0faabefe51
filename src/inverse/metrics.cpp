#include "diffuse/inverse/metrics.h"
#include "inverse/concrete_operators.h"

#include <cmath>
#include <limits>

#include "diffuse/core/error.h"
#include "diffuse/inverse/operator.h"

namespace diffuse {
namespace {

constexpr double kDataRange = 2.0;  // images live in [-1, 1]
constexpr int64_t kSsimWindow = 11;
constexpr double kSsimSigma = 1.5;
constexpr double kSsimK1 = 0.01;
constexpr double kSsimK2 = 0.03;

void check_pair(const char* metric, const torch::Tensor& image, const torch::Tensor& reference) {
  if (image.dim() != 4 || !image.sizes().equals(reference.sizes()))
    throw DataError(std::string(metric) + ": expected two [B, C, H, W] batches of the same shape, found " +
                    std::to_string(image.dim()) + "-d and " + std::to_string(reference.dim()) +
                    "-d tensors of " + std::to_string(image.numel()) + " and " +
                    std::to_string(reference.numel()) + " values");
}

}  // namespace

torch::Tensor psnr(const torch::Tensor& image, const torch::Tensor& reference) {
  check_pair("psnr", image, reference);
  torch::NoGradGuard no_grad;
  auto mse = (image.to(torch::kFloat64) - reference.to(torch::kFloat64)).pow(2).flatten(1).mean(1);
  // log10(peak² / 0) = +inf, which is the right answer for identical images.
  return 10.0 * (kDataRange * kDataRange / mse).log10();
}

torch::Tensor ssim(const torch::Tensor& image, const torch::Tensor& reference) {
  check_pair("ssim", image, reference);
  if (image.size(2) < kSsimWindow || image.size(3) < kSsimWindow)
    throw DataError("ssim: images must be at least 11 × 11 pixels (the Gaussian window), found " +
                    std::to_string(image.size(2)) + " × " + std::to_string(image.size(3)));
  torch::NoGradGuard no_grad;
  const int64_t batch = image.size(0), channels = image.size(1);
  // Channels become batch entries so one depthwise-free convolution serves them all.
  auto x = image.to(torch::kFloat64).reshape({batch * channels, 1, image.size(2), image.size(3)});
  auto y = reference.to(torch::kFloat64).reshape_as(x);
  auto window = gaussian_kernel(kSsimWindow, kSsimSigma).to(x.device()).view({1, 1, kSsimWindow, kSsimWindow});
  auto filter = [&](const torch::Tensor& t) { return torch::conv2d(t, window); };

  const auto mu_x = filter(x), mu_y = filter(y);
  const auto var_x = filter(x * x) - mu_x * mu_x;
  const auto var_y = filter(y * y) - mu_y * mu_y;
  const auto cov_xy = filter(x * y) - mu_x * mu_y;
  const double c1 = std::pow(kSsimK1 * kDataRange, 2), c2 = std::pow(kSsimK2 * kDataRange, 2);
  // Wang et al. 2004 eq. 13.
  auto map = ((2.0 * mu_x * mu_y + c1) * (2.0 * cov_xy + c2)) /
             ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2));
  return map.flatten(1).mean(1).view({batch, channels}).mean(1);
}

}  // namespace diffuse
