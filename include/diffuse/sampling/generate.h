#pragma once
// Batched generation from a preconditioned model: builds the σ grid, the (guided) denoiser
// and per-sample noise, and runs a sampler from the name table. Used by `diffuse sample`
// and by the trainer's periodic sample grids.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "diffuse/precond/classifier_guidance.h"
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
  // Classifier guidance (classifier_guidance.h) on top of the (CFG) denoiser when set: the
  // classifier's class count and the scale s. The labels are the guided classes (without
  // them a run cycles through all classifier_classes), also for an unconditional model.
  ClassifierFn classifier;
  int64_t classifier_classes = 0;
  double classifier_scale = 1.0;
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
