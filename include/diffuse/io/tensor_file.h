#pragma once
// Tensors saved for other tools (sample grids of latent models, `diffuse sample --format pt`):
// torch::save format, written to a temp file in the same folder and renamed into place.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace diffuse {

void write_tensor_file(const std::string& path, const torch::Tensor& tensor);
// A list of tensors in one file (torch::save of std::vector<torch::Tensor>), atomically.
void write_tensor_list_file(const std::string& path, const std::vector<torch::Tensor>& tensors);

}  // namespace diffuse
