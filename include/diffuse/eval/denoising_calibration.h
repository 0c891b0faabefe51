#pragma once
// Where a denoiser is weak: the error of D(x0 + σ n; σ) against held-out images x0 in bands of
// σ, beside the error of the best linear (Wiener) denoiser of the same images, so that a user
// sees at which noise levels a model has learnt more than the images' per-pixel mean and
// variance and at which it has not (`diffuse info --checkpoint C --calibration`).
//
// Every schedule is seen in the form x = x0 + σ n of Karras et al. 2022 (DESIGN §3), so one
// σ axis serves VP, VE, EDM and flow models alike.
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "diffuse/data/dataset.h"

namespace diffuse {

// D(x; σ, labels); labels [B] int64, or undefined for an unconditional model.
using LabelledDenoiserFn =
    std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& labels)>;

struct CalibrationOptions {
  double sigma_min = 0.002;
  double sigma_max = 80.0;
  int bands = 8;            // log-spaced between sigma_min and sigma_max
  int64_t images = 1000;    // the first `images` items of the data (all when fewer)
  int64_t batch_size = 250;
  bool labels = true;       // pass the images' labels (a class-conditional model)
  uint64_t seed = 0;        // σ within each band and the noise n
};

struct CalibrationBand {
  double sigma_lo = 0.0, sigma_hi = 0.0;
  double mse = 0.0;         // mean over images and pixels of (D - x0)²
  double wiener_mse = 0.0;  // the same for D_W(x) = μ + v / (v + σ²) (x − μ) per pixel
  double identity_mse = 0.0;  // mean σ² of the band's draws: the error of D(x) = x

  // mse / wiener_mse: below 1 the model knows more than the images' first two moments (NaN
  // for images without variance, whose Wiener error is 0).
  double ratio() const { return wiener_mse > 0.0 ? mse / wiener_mse : std::nan(""); }
};

struct DenoisingCalibration {
  int64_t images = 0;
  std::vector<CalibrationBand> bands;
};

// Called after each batch: (done, total) network calls.
using CalibrationProgress = std::function<void(int64_t done, int64_t total)>;

// Each image is noised once per band, with σ log-uniform in the band. The Wiener error uses
// the per-pixel mean μ and variance v of the same images, for which a linear estimator's
// expected error v σ² / (v + σ²) depends only on those two moments (whatever the images'
// distribution), and is averaged over the same σ draws. Throws Error for bad options or data
// with no items.
DenoisingCalibration calibrate_denoiser(const LabelledDenoiserFn& denoise, const Dataset& data,
                                        const CalibrationOptions& options, torch::Device device,
                                        const CalibrationProgress& progress = {});

// Two charts against log10 σ (log y): the model's and the Wiener error, and their ratio;
// written atomically to `path`.
void write_calibration_curves(const std::string& path, const DenoisingCalibration& calibration);

}  // namespace diffuse
