#pragma once
// Samplers (DESIGN §2-§3): free functions over a denoiser D(x; σ) and a host-side σ list
// ending in 0. They never branch on prediction type, never log, never touch files;
// progress leaves through the optional callback. x enters as x0-scale noise times σ_0.
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "diffuse/core/seeded_noise.h"
#include "diffuse/precond/precond.h"

namespace diffuse {

// Called after each network evaluation with (nfe_done, nfe_total).
using SamplerProgress = std::function<void(int64_t nfe_done, int64_t nfe_total)>;

struct SamplerOptions {
  double eta = 0.0;              // DDIM stochasticity (1 = ancestral / DDPM)
  double s_churn = 0.0;          // Heun (EDM Algorithm 2)
  double s_tmin = 0.0;
  double s_tmax = 1e9;
  double s_noise = 1.0;
  std::optional<double> clip_denoised;  // clamp D to [-c, c] (data range), off by default
  // DDPM with a learned reverse variance (Nichol & Dhariwal 2021 eq. 15): for a step σ → σ' > 0
  // just after D(x; σ) was evaluated, the σ-space noise std that replaces the fixed
  // posterior one (β̃). Empty: fixed variance. Set by generate_samples for learn_sigma models.
  std::function<torch::Tensor(double sigma, double sigma_next)> ddpm_step_std;
};

using SamplerFn = std::function<torch::Tensor(const DenoiserFn& denoiser, torch::Tensor x,
                                              const std::vector<double>& sigmas,
                                              SeededNoise& noise, const SamplerOptions& options,
                                              const SamplerProgress& progress)>;

struct SamplerEntry {
  const char* name;
  const char* description;
  SamplerFn fn;
  // Network evaluations for a σ list of n steps (n + 1 values ending in 0).
  int64_t (*nfe)(int64_t steps);
};

const std::vector<SamplerEntry>& sampler_table();
// Throws ConfigError naming the valid samplers.
const SamplerEntry& find_sampler(const std::string& name);

}  // namespace diffuse
