#pragma once
// Samplers (DESIGN §2-§3): free functions over a denoiser D(x; σ) and a host-side σ list
// ending in 0. They never branch on prediction type, never log, never touch files;
// progress leaves through the optional callback. x enters as x0-scale noise times σ_0.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "diffuse/core/seeded_noise.h"
#include "diffuse/precond/denoiser.h"

namespace diffuse {

class SamplerDenoiser;

// What a sampler reports after each network evaluation, as k-diffusion's callback does
// ({i, sigma, x, denoised}): progress bars read the counts, previews read x̂0.
struct SamplerStep {
  int64_t step;                    // index i of the step σ_i → σ_{i+1} under way
  double sigma;                    // the noise level the denoiser was evaluated at
  const torch::Tensor& x;          // the state it was evaluated on
  const torch::Tensor& denoised;   // its x̂0 (after clamping)
  int64_t nfe_done;                // evaluations so far, this one included
  int64_t nfe_total;               // evaluations of the whole run
};
using SamplerCallback = std::function<void(const SamplerStep& step)>;

// `step` as a part of a longer run reports it: `before` evaluations came first, of `total`.
inline SamplerStep within_run(const SamplerStep& step, int64_t before, int64_t total) {
  return {step.step, step.sigma, step.x, step.denoised, before + step.nfe_done, total};
}

struct SamplerOptions {
  double eta = 0.0;              // DDIM stochasticity (1 = ancestral / DDPM)
  double s_churn = 0.0;          // Heun (EDM Algorithm 2)
  double s_tmin = 0.0;
  double s_tmax = 1e9;
  double s_noise = 1.0;
  double clip_denoised = 0.0;    // c > 0 clamps x̂0 to [-c, c] (the data range); 0 = off
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

using SamplerFn = std::function<torch::Tensor(const Denoiser& denoiser, torch::Tensor x,
                                              const std::vector<double>& sigmas,
                                              SeededNoise& noise, const SamplerOptions& options,
                                              const SamplerCallback& callback)>;

// The σ list a sampler walks when generating from a model.
enum class SamplerGrid {
  spacing,      // `steps` levels in the run's spacing, ending in 0 (sigma_spacing.h)
  vp_training,  // every step of the model's discrete VP training grid (ddpm), ending in 0
};

// An option that only one sampler reads, with its value as text (for CLIs and run records).
struct SamplerOwnOption {
  const char* key;  // the SamplerOptions field, e.g. "langevin_steps" (flag --langevin-steps)
  std::string value;
};

// One row of the sampler table: everything a caller needs to know about a sampler, so that
// no code outside the table compares sampler names.
struct SamplerEntry {
  const char* name;
  const char* description;
  SamplerFn fn;
  // Network evaluations for a σ list of n steps (n + 1 values ending in 0).
  int64_t (*nfe)(int64_t steps, const SamplerOptions& options);
  // Whether the predictor–corrector sampler may use it as its predictor (a step from σ to
  // σ' that the corrector can follow).
  bool predicts;
  // Whether it integrates the probability-flow ODE (and so can also run it backwards, from
  // data to noise: DDIM inversion) when `stochastic` is false.
  bool ode;
  // Whether, with these options, it draws fresh noise, so that a sample is not a function of
  // its initial noise alone (what reflow's couplings and inversion need).
  bool (*stochastic)(const SamplerOptions& options);
  // The η it runs with when none is given (ddim: 0, deterministic; the ancestral samplers: 1).
  // Samplers without an η record this value and ignore it.
  double default_eta;
  SamplerGrid grid;
  // Whether its step can draw its noise with a model's learned reverse variance
  // (DenoiserOutput::reverse_log_variance) rather than the fixed posterior one.
  bool learned_variance;
  // The options only this sampler reads, with their values; nullptr: none.
  std::vector<SamplerOwnOption> (*own_options)(const SamplerOptions& options);
};

const std::vector<SamplerEntry>& sampler_table();
// Throws ConfigError naming the valid samplers.
const SamplerEntry& find_sampler(const std::string& name);
// The table's names joined with ", ", for help texts and errors; `filter` keeps some rows.
std::string sampler_names(bool (*filter)(const SamplerEntry&) = nullptr);

}  // namespace diffuse
