// The calibration's errors against denoisers whose error is known: D(x) = x (error σ²),
// D(x) = μ (error v, without noise), the Wiener denoiser (its own closed form), and the band
// layout and label passing.
#include "diffuse/eval/denoising_calibration.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/data/image_tensor_dataset.h"

using namespace diffuse;

namespace {

constexpr int64_t kImages = 300;

// kImages random 1×4×4 images whose pixel k has its own spread, labels cycling over 3.
ImageTensorDataset make_images() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const auto spread = torch::linspace(10, 120, 16, torch::kFloat32).view({1, 1, 4, 4});
  const auto pixels = (128.0 + spread * (torch::rand({kImages, 1, 4, 4}, gen) * 2.0 - 1.0)).round().to(torch::kUInt8);
  return ImageTensorDataset(pixels, torch::arange(kImages, torch::kLong).remainder(3), {"a", "b", "c"}, ImageTransform{});
}

torch::Tensor stacked(const Dataset& data) {
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < data.info().size; ++i) images.push_back(data.get(i).image);
  return torch::stack(images);
}

CalibrationOptions options(int bands) {
  CalibrationOptions o;
  o.sigma_min = 0.01;
  o.sigma_max = 10.0;
  o.bands = bands;
  o.images = kImages;
  o.batch_size = 64;
  return o;
}

}  // namespace

TEST(DenoisingCalibration, BandsAreLogSpacedOverTheRange) {
  const auto data = make_images();
  const auto result = calibrate_denoiser([](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) { return x; },
                                         data, options(3), torch::kCPU);
  ASSERT_EQ(result.bands.size(), 3u);
  EXPECT_EQ(result.images, kImages);
  EXPECT_NEAR(result.bands[0].sigma_lo, 0.01, 1e-12);
  EXPECT_NEAR(result.bands[0].sigma_hi, 0.1, 1e-12);
  EXPECT_NEAR(result.bands[1].sigma_hi, 1.0, 1e-12);
  EXPECT_NEAR(result.bands[2].sigma_hi, 10.0, 1e-12);
  for (const auto& band : result.bands) {
    EXPECT_GE(band.identity_mse, band.sigma_lo * band.sigma_lo);
    EXPECT_LE(band.identity_mse, band.sigma_hi * band.sigma_hi);
  }
}

TEST(DenoisingCalibration, TheIdentityErrsByTheNoiseVariance) {
  // D(x) = x leaves σ n, whose mean square is σ² up to the sampling error of 4800 normals
  // per band (relative standard deviation about √(2/4800) = 2%).
  const auto data = make_images();
  const auto result = calibrate_denoiser([](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) { return x; },
                                         data, options(4), torch::kCPU);
  for (const auto& band : result.bands) EXPECT_NEAR(band.mse / band.identity_mse, 1.0, 0.08) << band.sigma_lo;
}

TEST(DenoisingCalibration, TheMeanErrsByThePixelVarianceAtEveryBand) {
  // D(x) = μ ignores x: its error is the mean pixel variance exactly, and it is what the
  // Wiener denoiser tends to as σ grows (v σ² / (v + σ²) → v).
  const auto data = make_images();
  const auto images = stacked(data);
  const auto mean = images.mean(0, true);
  const double variance = images.to(torch::kFloat64).flatten(1).var(0, false).mean().item<double>();
  auto o = options(4);
  o.sigma_max = 100.0;  // the last band from 17.8 on, where v / σ² < 0.001
  const auto result = calibrate_denoiser(
      [&](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) { return mean.expand_as(x); }, data, o,
      torch::kCPU);
  for (const auto& band : result.bands) EXPECT_NEAR(band.mse, variance, 1e-6 * variance);
  EXPECT_NEAR(result.bands.back().wiener_mse / variance, 1.0, 0.01);
  EXPECT_LT(result.bands.front().wiener_mse, 0.05 * variance);
}

TEST(DenoisingCalibration, TheWienerDenoiserMatchesItsOwnClosedForm) {
  // D_W(x) = μ + v / (v + σ²) (x − μ) per pixel has expected error v σ² / (v + σ²): the
  // measured error agrees within the sampling error, and no band is far from ratio 1.
  const auto data = make_images();
  const auto images = stacked(data);
  const auto mean = images.mean(0, true);
  const auto variance = images.var(0, false, true);
  const auto wiener = [&](const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor&) {
    const auto s2 = sigma.view({-1, 1, 1, 1}).square();
    return mean + variance / (variance + s2) * (x - mean);
  };
  const auto result = calibrate_denoiser(wiener, data, options(4), torch::kCPU);
  for (const auto& band : result.bands) EXPECT_NEAR(band.mse / band.wiener_mse, 1.0, 0.08) << band.sigma_lo;
}

TEST(DenoisingCalibration, LabelsArePassedOnlyWhenAskedFor) {
  const auto data = make_images();
  int64_t checked = 0;
  auto o = options(1);
  const auto with_labels = [&](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor& labels) {
    EXPECT_TRUE(labels.defined());
    if (labels.defined()) {
      EXPECT_EQ(labels.size(0), x.size(0));
      // Batches of 64 in order: the first label of batch k is (64 k) mod 3.
      EXPECT_EQ(labels[0].item<int64_t>(), (checked * 64) % 3);
    }
    ++checked;
    return x;
  };
  calibrate_denoiser(with_labels, data, o, torch::kCPU);
  EXPECT_EQ(checked, 5);  // ceil(300 / 64)
  o.labels = false;
  calibrate_denoiser([](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor& labels) {
    EXPECT_FALSE(labels.defined());
    return x;
  }, data, o, torch::kCPU);
}

TEST(DenoisingCalibration, ProgressCountsEveryBatchOfEveryBand) {
  const auto data = make_images();
  std::vector<int64_t> seen;
  calibrate_denoiser([](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) { return x; }, data,
                     options(2), torch::kCPU, [&](int64_t done, int64_t total) {
                       EXPECT_EQ(total, 10);
                       seen.push_back(done);
                     });
  ASSERT_EQ(seen.size(), 10u);
  EXPECT_EQ(seen.back(), 10);
}

TEST(DenoisingCalibration, BadOptionsAreRefused) {
  const auto data = make_images();
  const auto identity = [](const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) { return x; };
  auto o = options(2);
  o.sigma_max = o.sigma_min;
  EXPECT_THROW(calibrate_denoiser(identity, data, o, torch::kCPU), Error);
  o = options(0);
  EXPECT_THROW(calibrate_denoiser(identity, data, o, torch::kCPU), Error);
  o = options(2);
  o.images = 0;
  EXPECT_THROW(calibrate_denoiser(identity, data, o, torch::kCPU), Error);
}
