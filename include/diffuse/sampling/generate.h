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
  // (CUDA LibTorch 2.x).
  bool cuda_graph = false;
};

struct GenerateResult {
  torch::Tensor images;         // [N, C, H, W] float32 on the CPU, the model's data range (about [-1, 1])
  std::vector<double> sigmas;   // the σ list every batch walked, ending in 0
  int64_t nfe_per_batch = 0;    // network evaluations of one batch
  int64_t nfe = 0;              // of the whole run
};

// The σ list a generation run uses: the sampler's table entry says which grid (ddpm: all T
// steps of the VP training grid).
std::vector<double> generation_sigmas(const NoiseSchedule& schedule, const GenerateOptions& options);

// Generates one sample per seed. `progress` receives each evaluation's SamplerStep, with the
// counts over the whole run.
GenerateResult generate(Precond& precond, const GenerateOptions& options, const SamplerCallback& progress = {});
// generate(...).images.
torch::Tensor generate_samples(Precond& precond, const GenerateOptions& options,
                               const SamplerCallback& progress = {});

}  // namespace diffuse
