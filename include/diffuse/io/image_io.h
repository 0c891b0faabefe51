#pragma once
// Image files and grids. Tensors are in [-1, 1]; pixels are clamped and rounded to uint8
// (round((x + 1) · 127.5)). With OpenCV any format OpenCV knows (by extension) is read and
// written; the binary Netpbm formats PGM (P5, 1 channel) and PPM (P6, 3 channels) are
// handled by diffuse itself, so builds without OpenCV still write images. Every write goes
// to a temp file in the same folder and is renamed into place.
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace diffuse {

// Tiles images [B, C, H, W] (C = 1 or 3) into a grid of `cols` columns (fewer when B is
// smaller), `padding` black pixels around and between the tiles:
// width = cols · (W + padding) + padding, height = rows · (H + padding) + padding.
torch::Tensor make_image_grid(const torch::Tensor& images, int64_t cols, int64_t padding = 2);

void write_image_grid(const std::string& path, const torch::Tensor& images, int64_t cols,
                      int64_t padding = 2);

// Writes one image [C, H, W] (C = 1 or 3) in [-1, 1].
void write_image(const std::string& path, const torch::Tensor& image);

// Reads an image as [C, H, W] float32 in [-1, 1]; `channels` 1 or 3 converts, 0 keeps the
// file's own (grey → 1, colour → 3, alpha dropped).
torch::Tensor read_image(const std::string& path, int64_t channels);

// The extension write_image uses by default: ".png" with OpenCV, else ".pgm" (1 channel)
// or ".ppm" (3 channels).
std::string image_extension(int64_t channels);

// [C, H, W] in [-1, 1] → [H, W, C] uint8 (clamped, rounded), the layout image files use.
torch::Tensor to_uint8_hwc(const torch::Tensor& image);

}  // namespace diffuse
