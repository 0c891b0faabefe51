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

class SamplerDenoiser;

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
  // Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1): T steps per noise level
  // and the step size ε of α_i = ε σ_i²/σ_L².
  int langevin_steps = 100;
  double langevin_eps = 2e-5;
  // Predictor–corrector (Song et al. 2021, Algorithms 2-5): the predictor (a sampler of the
  // table), the Langevin corrector steps after each of its steps and their signal-to-noise
  // ratio r.
  std::string predictor = "sde_ve";
  int corrector_steps = 1;
  double snr = 0.16;
  // Consistency sampling (Song et al. 2023, Algorithm 1): the boundary σ_min of the model,
  // re-noising to σ_n with √(σ_n² − σ_min²). Set by generate_samples from the model.
  double consistency_sigma_min = 0.0;
  // Set by sample_pc: every sampler hands x to it after each step that ends at σ' > 0
  // (through SamplerDenoiser::correct). Empty: no correction.
  std::function<torch::Tensor(const torch::Tensor& x, double sigma, SamplerDenoiser& denoise,
                              SeededNoise& noise)>
      corrector;
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
  int64_t (*nfe)(int64_t steps, const SamplerOptions& options);
  // Whether the predictor–corrector sampler may use it as its predictor (a step from σ to
  // σ' that the corrector can follow).
  bool predicts;
  // Whether it solves the probability-flow ODE, so that a sample is a function of its initial
  // noise (with eta 0 for ddim and s_churn 0 for heun): what reflow's couplings need.
  bool ode;
};

const std::vector<SamplerEntry>& sampler_table();
// Throws ConfigError naming the valid samplers.
const SamplerEntry& find_sampler(const std::string& name);

}  // namespace diffuse
