#include "diffuse/sampling/generation_policy.h"

#include <cmath>

namespace diffuse {

double default_clip_denoised(const DataOptions& data) { return data.type == DatasetType::latents ? 0.0 : 1.0; }

bool guidance_trained(const ExperimentConfig& config) {
  return config.model.num_classes > 0 && config.diffusion.p_uncond > 0;
}

int64_t grid_columns(int64_t label_cycle, int64_t n) {
  constexpr int64_t kMaxClassColumns = 16;
  if (label_cycle > 1 && label_cycle <= kMaxClassColumns) return label_cycle;
  return static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
}

}  // namespace diffuse
