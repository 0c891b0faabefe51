#pragma once
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// Predictor–corrector sampling (Song et al. 2021, §4.2, Algorithms 2-3): the predictor
// (options.predictor, any sampler of the table that `predicts`) walks the σ list, and after
// each of its steps to σ' > 0, options.corrector_steps Langevin corrector steps at σ'
// (langevin_correct, Algorithm 4) with signal-to-noise ratio options.snr. With zero corrector
// steps it is exactly the predictor. Throws ConfigError for an unknown predictor or one that
// cannot predict.
torch::Tensor sample_pc(const Denoiser& denoiser, torch::Tensor x,
                        const std::vector<double>& sigmas, SeededNoise& noise,
                        const SamplerOptions& options, const SamplerCallback& progress = {});

// The predictor's NFE plus corrector_steps for each of the n - 1 steps ending above 0.
int64_t pc_nfe(int64_t steps, const SamplerOptions& options);

}  // namespace diffuse
