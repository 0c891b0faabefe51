#pragma once
// The classifier: section of an experiment config (model.arch: classifier). Keys, valid
// values and meanings are described once, by classifier_options_schema().
#include <array>
#include <vector>

#include "diffuse/core/option_schema.h"

namespace diffuse {

// A noise-conditional classifier p(y | x, σ) (model.arch: classifier) is trained on x_σ with
// σ from the diffusion section's training distribution, or on clean images only.
enum class ClassifierNoise { noisy, none };
inline constexpr std::array<EnumName<ClassifierNoise>, 2> kClassifierNoiseNames{{
    {"noisy", ClassifierNoise::noisy},
    {"none", ClassifierNoise::none},
}};

struct ClassifierOptions {
  ClassifierNoise noise = ClassifierNoise::noisy;
  // Test-split accuracy at each checkpoint: at these σ, over this many batches (0 = none).
  std::vector<double> eval_sigmas{0.0, 0.1, 0.3, 1.0, 3.0};
  int eval_batches = 20;
};

const OptionSchema<ClassifierOptions>& classifier_options_schema();

}  // namespace diffuse
