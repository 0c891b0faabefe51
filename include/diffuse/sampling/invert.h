#pragma once
// DDIM inversion (Song et al. 2021, "Denoising diffusion implicit models", §4.3 and eq. 14;
// Dhariwal & Nichol 2021, App. F): the probability-flow ODE dx/dσ = (x − D(x; σ))/σ
// (Karras et al. 2022, eq. 3) integrated upwards, from an image towards the noise it would
// be sampled from. With Euler this is DDIM inversion (DDIM with η = 0 is Euler in σ-space);
// heun and dpmpp2m give the second-order inversions. Sampling the latent back with the same
// solver and grid reconstructs the image up to the solvers' discretisation errors.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "diffuse/precond/precond.h"
#include "diffuse/sampling/sampler.h"
#include "diffuse/schedule/sigma_spacing.h"

namespace diffuse {

// Integrates the ODE from x at sigmas.front() up to sigmas.back() (a strictly increasing
// list of σ > 0) with an ODE sampler of the table (its `ode` column: euler, heun, dpmpp2m,
// ddim; eta and s_churn must be 0). Throws ConfigError naming the ODE samplers otherwise.
torch::Tensor invert_ode(const std::string& sampler, const Denoiser& denoiser, const torch::Tensor& x,
                         const std::vector<double>& sigmas, const SamplerOptions& options = {},
                         const SamplerCallback& progress = {});

// The inversion path of a sampling grid (decreasing, ending in 0): the schedule's σ_min,
// where an image is taken as x(σ_min) (an error of order σ_min), then the grid's σ > 0 in
// increasing order. Its steps mirror the sampling steps one for one, so inverting then
// sampling costs the same number of steps each way.
std::vector<double> inversion_sigmas(const NoiseSchedule& schedule, const std::vector<double>& sampling_sigmas);

struct InvertOptions {
  std::string sampler = "euler";  // an ODE sampler of the table; euler = DDIM inversion
  int steps = 20;
  TimestepSpacing spacing = TimestepSpacing::trailing;  // as for sampling (generation_sigmas)
  SamplerOptions sampler_options;
  // Guidance weight, used both ways (negative allowed: SDI inverts with negative CFG).
  double cfg = 1.0;
  // Per image (cycled). Empty: the null class of a class-conditional model (cfg must then
  // be 1), or no label for an unconditional one.
  std::vector<int64_t> labels;
  int64_t batch_size = 64;
};

struct Inversion {
  std::vector<double> sigmas;      // the inversion path, increasing
  torch::Tensor noise;             // [N, C, H, W] x(σ_max)/σ_max: the unit noise sampling starts from
  torch::Tensor reconstructions;   // the noise sampled back with the same sampler and grid
  torch::Tensor psnr;              // [N] float64, reconstruction against the input (inverse/metrics.h)
};

// Inverts images [N, C, H, W] in the model's data range (about [-1, 1]) and samples them back.
// Tensors come back float32 on the CPU. `progress` receives (nfe_done, nfe_total) over the run.
Inversion invert_images(Precond& precond, const torch::Tensor& images, const InvertOptions& options,
                        const SamplerCallback& progress = {});

}  // namespace diffuse
