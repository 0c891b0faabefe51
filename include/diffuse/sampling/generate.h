#pragma once
// Batched generation from a preconditioned model: builds the σ grid, the (guided) denoiser
// and per-sample noise, and runs a sampler from the name table. Used by `diffuse sample`
// and by the trainer's periodic sample grids.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "diffuse/precond/precond.h"
#include "diffuse/sampling/sampler.h"
#include "diffuse/schedule/sigma_spacing.h"

namespace diffuse {

struct GenerateOptions {
  std::string sampler = "dpmpp2m";
  int steps = 20;
  TimestepSpacing spacing = TimestepSpacing::trailing;  // VP models; EDM always uses karras
  SamplerOptions sampler_options;
  double cfg = 1.0;                  // guidance weight (1 = plain conditional model)
  std::vector<uint64_t> seeds;       // one sample per seed
  std::vector<int64_t> labels;       // per sample (cycled over the seeds); empty = unconditional
  int64_t batch_size = 64;
  bool bf16 = false;                 // CUDA autocast
  // Capture the denoiser call of each batch in a CUDA graph and replay it at every step
  // (CUDA LibTorch 2.x; not with the learned-variance DDPM sampler, whose step reads the
  // network's variance outside the call).
  bool cuda_graph = false;
};

// The σ list a generation run uses (the sampler's own grid for ddpm: all T steps).
std::vector<double> generation_sigmas(const NoiseSchedule& schedule, const GenerateOptions& options);

// Returns [N, C, H, W] float32 on the CPU in the model's data range (about [-1, 1]).
// `progress` receives (nfe_done, nfe_total) over the whole run.
torch::Tensor generate_samples(Precond& precond, const GenerateOptions& options,
                               const SamplerProgress& progress = {});

}  // namespace diffuse
