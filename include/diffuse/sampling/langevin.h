#pragma once
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// Annealed Langevin dynamics (Song & Ermon 2019, "Generative Modeling by Estimating
// Gradients of the Data Distribution", Algorithm 1): for each positive σ_i of the list,
// options.langevin_steps steps x ← x + (α_i/2) ∇log p_{σ_i}(x) + √α_i z with
// α_i = ε σ_i²/σ_L² (ε = options.langevin_eps, σ_L the smallest positive σ). A list ending
// in 0 ends with the denoising step x ← D(x; σ_L) (Song & Ermon 2020 §4 / Jolicoeur-Martineau
// et al. 2021), one more NFE.
torch::Tensor sample_langevin(const Denoiser& denoiser, torch::Tensor x,
                              const std::vector<double>& sigmas, SeededNoise& noise,
                              const SamplerOptions& options, const SamplerCallback& progress = {});

// NFE for n steps (n positive levels, ending in 0): n·T + 1.
int64_t langevin_nfe(int64_t steps, const SamplerOptions& options);

// The Langevin corrector (Song et al. 2021, Algorithm 4) in σ-space: `steps` times
//   g = ∇log p_σ(x), z ~ N(0, I), ε = 2 (r ‖z‖/‖g‖)², x ← x + ε g + √(2ε) z,
// with the norms per sample (never over the batch, so a sample does not depend on its
// batch). Algorithm 5 (VP) is the same step in the VP state; in σ-space it differs only by
// the factor α_i = 1 - β_i ≈ 1 on ε. Uses `denoise` (NFE counting, clamping) and `noise`.
torch::Tensor langevin_correct(const torch::Tensor& x, double sigma, int steps, double snr,
                               SamplerDenoiser& denoise, SeededNoise& noise);

}  // namespace diffuse
