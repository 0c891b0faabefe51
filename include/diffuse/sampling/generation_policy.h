#pragma once
// What a generation run does when not told otherwise, decided once from the model's config
// for `diffuse sample`, the trainer's sample grids, in-training evaluation and reflow.
#include <cstdint>

#include "diffuse/config/experiment_config.h"

namespace diffuse {

// The x̂0 clamp: images live in [-1, 1], and clamping x̂0 there (as the DDPM/DDIM reference
// code does) keeps early-trained models from drifting to saturated samples at high σ;
// latents are unbounded (0: no clamp).
double default_clip_denoised(const DataOptions& data);

// Whether classifier-free guidance can steer the model: its unconditional branch is the null
// class, which only label dropout (diffusion.p_uncond > 0) trains.
bool guidance_trained(const ExperimentConfig& config);

// Columns of a sample grid of n images whose labels cycle through `label_cycle` classes: one
// column per class for a short cycle (2 to 16), else a square.
int64_t grid_columns(int64_t label_cycle, int64_t n);

}  // namespace diffuse
