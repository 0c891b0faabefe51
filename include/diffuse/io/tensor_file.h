#pragma once
// Tensors saved for other tools (sample grids of latent models, `diffuse sample --format pt`):
// torch::save format, written to a temp file in the same folder and renamed into place.
#include <torch/torch.h>

#include <string>

namespace diffuse {

void write_tensor_file(const std::string& path, const torch::Tensor& tensor);

}  // namespace diffuse
