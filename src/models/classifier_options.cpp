#include "diffuse/models/classifier_options.h"

#include <cstdint>

namespace diffuse {

namespace {

constexpr int64_t kMaxBatches = 1'000'000'000'000;

OptionSchema<ClassifierOptions> make_classifier_schema() {
  using O = ClassifierOptions;
  OptionSchema<O> s;
  s.choice("noise", &O::noise, kClassifierNoiseNames,
           "noisy: trains on x0 + σ n with σ from `diffusion.sigma_distribution`; none: on clean "
           "images (a feature "
           "network)");
  s.field("eval_sigmas", &O::eval_sigmas,
          "σ of the test-split accuracy (EMA weights) after each checkpoint",
          checks::custom<std::vector<double>>(
              "at most 64, each in [0, 1e6]", [](const std::vector<double>& sigmas) {
                if (sigmas.size() > 64)
                  return "must list at most 64 noise levels, found " +
                         std::to_string(sigmas.size());
                for (double sigma : sigmas)
                  if (!(sigma >= 0 && sigma <= 1e6))
                    return "σ values must lie in [0, 1e6], found " + format_double(sigma);
                return std::string();
              }));
  s.field("eval_batches", &O::eval_batches, "test batches of that accuracy (0: none)",
          checks::int_range<int>(0, kMaxBatches));
  return s;
}

}  // namespace

const OptionSchema<ClassifierOptions>& classifier_options_schema() {
  return built_once<make_classifier_schema>();
}

}  // namespace diffuse
