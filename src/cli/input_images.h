#pragma once
// The image inputs of the commands that take existing images (restore, invert): an image
// file, a folder of images, or a dataset slice, brought to a model's shape.
#include <torch/torch.h>

#include <string>
#include <vector>

namespace diffuse::cli {

struct Inputs {
  std::vector<std::string> names;  // output file stems, unique
  torch::Tensor images;            // [N, C, H, W] float32 CPU, in [-1, 1]
};

// Brings one image [C, H, W] to `shape` (channels, height, width): as is when it already
// fits; else a DataError naming `source` and both shapes, unless `resize` allows converting
// channels (grey ↔ colour) and resampling (area when shrinking, bilinear otherwise).
torch::Tensor conform(torch::Tensor image, const std::string& source, const std::vector<int64_t>& shape,
                      bool resize, const char* what);

// Reads an image file; `shape` as in conform. With --resize the channel conversion is the
// image reader's own.
torch::Tensor read_conformed(const std::string& path, const std::vector<int64_t>& shape, bool resize,
                             const char* what);

// --input: an image file, a folder of images (sorted by name), or a dataset slice
// (fashion:test[0:64]).
Inputs load_inputs(const std::string& input, const std::vector<int64_t>& shape, bool resize);

}  // namespace diffuse::cli
