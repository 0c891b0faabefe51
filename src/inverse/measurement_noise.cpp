#include "diffuse/inverse/measurement_noise.h"

#include "diffuse/core/error.h"

namespace diffuse {

torch::Tensor add_measurement_noise(const torch::Tensor& clean, const MeasurementNoiseOptions& options,
                                    SeededNoise& noise) {
  if (noise.batch_size() != clean.size(0))
    throw Error("add_measurement_noise: " + std::to_string(noise.batch_size()) +
                " noise seeds for a batch of " + std::to_string(clean.size(0)));
  torch::NoGradGuard no_grad;
  switch (options.type) {
    case MeasurementNoiseType::gaussian:
      return clean + options.sigma * noise.randn_like(clean).to(clean.device());
    case MeasurementNoiseType::poisson: {
      const double rate = options.rate;
      auto counts = noise.poisson((rate * (clean + 1.0) / 2.0).clamp_min(0.0).clamp_max(rate));
      return counts * (2.0 / rate) - 1.0;
    }
  }
  throw std::logic_error("add_measurement_noise: unhandled noise type");
}

namespace {

// Each noise type reads its own parameter only.
OptionSchema<MeasurementNoiseOptions>::Applies used_by(MeasurementNoiseType type) {
  return [type](const MeasurementNoiseOptions& o) {
    if (o.type == type) return std::string();
    return std::string("not used by noise type '") + enum_name(o.type, kMeasurementNoiseTypeNames) +
           "' (its keys: " + (o.type == MeasurementNoiseType::gaussian ? "sigma" : "rate") + ")";
  };
}

OptionSchema<MeasurementNoiseOptions> make_schema() {
  using O = MeasurementNoiseOptions;
  OptionSchema<O> s;
  s.choice("type", &O::type, kMeasurementNoiseTypeNames, "the noise n of y = A(x) + n");
  s.field("sigma", &O::sigma, "gaussian: std σ_y in data units ([-1, 1] images)", checks::range(0.0, 10.0))
      .applies(used_by(MeasurementNoiseType::gaussian));
  s.field("rate", &O::rate,
          "poisson: expected photon count λ of a white pixel (255 equals the DPS reference code's rate 1.0)",
          checks::custom<double>("(0, 1e9]", [](const double& v) {
            return v > 0.0 && v <= 1e9
                       ? std::string()
                       : "must lie in (0, 1e9] (expected photon count of a white pixel), found " + format_double(v);
          }))
      .applies(used_by(MeasurementNoiseType::poisson));
  return s;
}

}  // namespace

const OptionSchema<MeasurementNoiseOptions>& measurement_noise_schema() {
  return built_once<make_schema>();
}

}  // namespace diffuse
