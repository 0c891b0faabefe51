#pragma once
#include "diffuse/sampling/sampler.h"

namespace diffuse {

// DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++", Algorithm 2): multistep, data
// prediction, in λ = -log σ as k-diffusion's sample_dpmpp_2m. With h_i = λ_{i+1} - λ_i and
// r_i = h_{i-1}/h_i: x_{i+1} = (σ_{i+1}/σ_i) x_i - (e^{-h_i} - 1) D̄_i, where
// D̄_i = (1 + 1/(2r_i)) D_i - 1/(2r_i) D_{i-1}. The first step is first order (D̄ = D) and
// the last step into σ = 0 lands on D. One NFE per step; deterministic.
torch::Tensor sample_dpmpp_2m(const Denoiser& denoiser, torch::Tensor x,
                              const std::vector<double>& sigmas, SeededNoise& noise,
                              const SamplerOptions& options,
                              const SamplerCallback& progress = {});

}  // namespace diffuse
