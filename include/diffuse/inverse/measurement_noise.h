#pragma once
// Measurement noise models y = A(x) + n (Chung et al. 2023 §3.1-3.2): Gaussian with std σ_y,
// or Poisson shot noise. Drawn per sample from SeededNoise, so measurement k is the same
// whatever batch it lands in.
#include <torch/torch.h>

#include <array>

#include "diffuse/core/option_schema.h"
#include "diffuse/core/seeded_noise.h"

namespace diffuse {

enum class MeasurementNoiseType { gaussian, poisson };
inline constexpr std::array<EnumName<MeasurementNoiseType>, 2> kMeasurementNoiseTypeNames{{
    {"gaussian", MeasurementNoiseType::gaussian},
    {"poisson", MeasurementNoiseType::poisson},
}};

struct MeasurementNoiseOptions {
  MeasurementNoiseType type = MeasurementNoiseType::gaussian;
  // gaussian: std σ_y in data units ([-1, 1] images).
  double sigma = 0.05;
  // poisson: expected photon count λ of a white pixel. y = 2 Poisson(λ (x+1)/2) / λ - 1, with
  // (x+1)/2 clamped to [0, 1]; λ = 255 equals the DPS reference code's rate 1.0.
  double rate = 255.0;
};

// clean: [B, ...] noise-free measurement A(x) in data units; noise.batch_size() == B.
torch::Tensor add_measurement_noise(const torch::Tensor& clean, const MeasurementNoiseOptions& options,
                                    SeededNoise& noise);

// Keys, valid values and meanings of the `noise:` section of a restore task.
const OptionSchema<MeasurementNoiseOptions>& measurement_noise_schema();

}  // namespace diffuse
