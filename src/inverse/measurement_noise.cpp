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

}  // namespace diffuse
