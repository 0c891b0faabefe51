#pragma once
// `restore(...)`: an inverse problem solved with Diffusion Posterior Sampling (Chung et al.
// 2023, Algorithm 1; dps.h) as one library call, what `diffuse restore` runs. Clean images are
// degraded by the task's operator and measurement noise (seeded per image) and restored, with
// per-image quality against the clean ones; a real measurement is restored without metrics.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/inverse/restore_task.h"
#include "diffuse/precond/precond.h"
#include "diffuse/sampling/sampler.h"

namespace diffuse {

struct RestoreRequest {
  RestoreTask task;
  // Exactly one of: clean images [N, C, H, W] in the data range, to degrade; or measurements
  // [N, measurement_shape...] taken elsewhere (conformed to the operator, e.g. masked).
  torch::Tensor clean;
  torch::Tensor measurement;
  std::vector<uint64_t> seeds;  // one per image: its measurement noise and its sampling noise
  int64_t batch_size = 16;
};

// PSNR and SSIM per image, [N] float64 (inverse/metrics.h); ssim undefined under 11 px.
struct RestoreQuality {
  torch::Tensor psnr, ssim;
};

struct RestoreResult {
  torch::Tensor restored;          // [N, C, H, W] float32 on the CPU
  torch::Tensor measurement;       // y, [N, measurement_shape...] float32 on the CPU
  std::vector<double> sigmas;      // the σ list DPS walked, ending in 0
  int64_t nfe_per_image = 0;
  std::string operator_name;
  // With clean images only: the restored images and the naive estimate (the measurement on
  // the image grid, bilinear-upsampled for super-resolution) against the clean ones.
  bool has_quality = false;
  RestoreQuality quality, naive_quality;
  std::string naive_name;
};

// Throws ConfigError for a task the model cannot run (class out of range, a class for an
// unconditional model) and DataError for inputs of the wrong shape. `progress` receives each
// step of each batch (nfe counts over the whole run).
RestoreResult restore(Precond& precond, const RestoreRequest& request, const SamplerCallback& progress = {});

// The naive estimate DPS must beat: y itself on the image grid (inpainting, blur, denoising),
// bilinear upsampling of y for super-resolution.
torch::Tensor naive_estimate(const torch::Tensor& y, int64_t image_size);

// A measurement shown on the image grid (nearest upsampling for super-resolution).
torch::Tensor display_measurement(const torch::Tensor& y, int64_t image_size);

}  // namespace diffuse
