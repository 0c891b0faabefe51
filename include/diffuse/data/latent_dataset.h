#pragma once
// Pre-encoded latents (e.g. from a VAE) for latent diffusion: a .safetensors file holding
// 'latents' [N, C, H, W] (any float dtype) and 'labels' [N] (any integer dtype), as Python's
// safetensors.torch.save_file writes it; a .npy file of the latents with the labels beside it in
// NAME.labels.npy (np.save); or a file written by
// torch::save(std::vector<torch::Tensor>{latents [N, C, H, W] float, labels [N] int64}).
// Items are returned unscaled: latents are already in the model's input space.
#include <torch/torch.h>

#include <string>

#include "diffuse/data/data_options.h"
#include "diffuse/data/dataset.h"

namespace diffuse {

class LatentDataset : public Dataset {
 public:
  // `options.path` is the file; resolution and channels must be 0 or match the latents.
  explicit LatentDataset(const DataOptions& options);

  const DatasetInfo& info() const override { return info_; }
  Example get(int64_t index) const override;

 private:
  torch::Tensor latents_;  // [N, C, H, W] float32
  torch::Tensor labels_;   // [N] int64
  DatasetInfo info_;
};

}  // namespace diffuse
