#include "diffuse/eval/denoising_calibration.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "diffuse/core/device_copy.h"
#include "diffuse/core/error.h"
#include "diffuse/eval/curve_plot.h"

namespace diffuse {

namespace {

void check_options(const CalibrationOptions& o) {
  if (!(o.sigma_min > 0.0) || !(o.sigma_max > o.sigma_min) || !std::isfinite(o.sigma_max))
    throw Error("calibration: expected 0 < sigma_min < sigma_max, found " + std::to_string(o.sigma_min) +
                " and " + std::to_string(o.sigma_max));
  if (o.bands < 1) throw Error("calibration: expected at least 1 σ band, found " + std::to_string(o.bands));
  if (o.images < 1) throw Error("calibration: expected at least 1 image, found " + std::to_string(o.images));
  if (o.batch_size < 1)
    throw Error("calibration: expected a batch size of at least 1, found " + std::to_string(o.batch_size));
}

struct HeldOut {
  torch::Tensor images;  // [N, C, H, W] float32 on the CPU
  torch::Tensor labels;  // [N] int64
};

HeldOut first_items(const Dataset& data, int64_t count) {
  const int64_t n = std::min(count, data.info().size);
  if (n < 1) throw Error("calibration: the data has no items");
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  images.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    Example e = data.get(i);
    images.push_back(e.image);
    labels.push_back(e.label);
  }
  return {torch::stack(images), torch::tensor(labels, torch::kLong)};
}

}  // namespace

DenoisingCalibration calibrate_denoiser(const LabelledDenoiserFn& denoise, const Dataset& data,
                                        const CalibrationOptions& options, torch::Device device,
                                        const CalibrationProgress& progress) {
  check_options(options);
  torch::NoGradGuard no_grad;
  const HeldOut held = first_items(data, options.images);
  const int64_t n = held.images.size(0);
  // Per-pixel moments of these very images in float64: the Wiener error below is then the
  // exact expected error of the best linear denoiser of this set.
  const auto pixels = held.images.to(torch::kFloat64).flatten(1);
  const auto variance = pixels.var(0, /*unbiased=*/false);  // [d]

  auto gen = at::make_generator<at::CPUGeneratorImpl>(options.seed);
  const double log_lo = std::log(options.sigma_min), log_hi = std::log(options.sigma_max);
  const int64_t batches = (n + options.batch_size - 1) / options.batch_size;
  const int64_t total = batches * options.bands;
  int64_t done = 0;

  DenoisingCalibration result;
  result.images = n;
  for (int b = 0; b < options.bands; ++b) {
    const double band_lo = log_lo + (log_hi - log_lo) * b / options.bands;
    const double band_hi = log_lo + (log_hi - log_lo) * (b + 1) / options.bands;
    double squared_error = 0.0, wiener = 0.0, identity = 0.0;
    for (int64_t start = 0; start < n; start += options.batch_size) {
      const int64_t end = std::min(n, start + options.batch_size);
      const auto x0 = held.images.slice(0, start, end);
      const auto sigma =
          (band_lo + (band_hi - band_lo) * torch::rand({end - start}, gen, torch::kFloat64)).exp();
      const auto noise = torch::randn(x0.sizes(), gen, torch::kFloat32);
      const auto x = x0 + sigma.to(torch::kFloat32).view({-1, 1, 1, 1}) * noise;
      const auto labels = options.labels ? copy_to_device(held.labels.slice(0, start, end), device) : torch::Tensor();
      const auto d = denoise(copy_to_device(x, device), copy_to_device(sigma.to(torch::kFloat32), device), labels);
      squared_error += (d.to(torch::kCPU, torch::kFloat64) - x0.to(torch::kFloat64)).square().sum().item<double>();
      const auto s2 = sigma.square().view({-1, 1});  // [B, 1]
      // Σ_pixels v σ² / (v + σ²) for each image's σ (Wiener 1949; per pixel, x0's moments only).
      wiener += (variance.view({1, -1}) * s2 / (variance.view({1, -1}) + s2)).sum().item<double>();
      identity += s2.sum().item<double>() * static_cast<double>(pixels.size(1));
      if (progress) progress(++done, total);
    }
    const double count = static_cast<double>(n) * static_cast<double>(pixels.size(1));
    result.bands.push_back({std::exp(band_lo), std::exp(band_hi), squared_error / count, wiener / count,
                            identity / count});
  }
  return result;
}

void write_calibration_curves(const std::string& path, const DenoisingCalibration& calibration) {
  // D(x) = x stays in the table only: its error grows as σ² and would flatten the chart.
  CurveSeries model{"model", {}, {}}, wiener{"Wiener", {}, {}}, ratio{"model / Wiener", {}, {}};
  for (const auto& band : calibration.bands) {
    const double mid = 0.5 * (std::log10(band.sigma_lo) + std::log10(band.sigma_hi));
    for (auto* series : {&model, &wiener, &ratio}) series->x.push_back(mid);
    model.y.push_back(band.mse);
    wiener.y.push_back(band.wiener_mse);
    ratio.y.push_back(band.ratio());
  }
  write_curves(path, {{"error per pixel", "log10 sigma", {model, wiener}, true},
                      {"model error / Wiener error", "log10 sigma", {ratio}, true}});
}

}  // namespace diffuse
