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

// Colour [3, H, W] → grey [1, H, W] by ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, the
// weights of OpenCV's COLOR_RGB2GRAY), so files, datasets and CLI inputs turn grey alike.
// The weights are float: on float32 images that is what a double weight rounds to anyway.
torch::Tensor rgb_to_grey(const torch::Tensor& chw);

// The largest image diffuse decodes (16384 × 16384): a header claiming more is refused before
// any memory is allocated for it.
inline constexpr int64_t kMaxImagePixels = int64_t{1} << 28;

// The bytes of an encoded image file, checked before a decoder sees them: a PNG's chunk
// structure and CRCs (truncation, flipped bits) and the size its header claims. Throws a
// DataError naming the file, so that no decoder prints its own complaint about a bad file.
std::string read_checked_image_bytes(const std::string& path);

// The extension write_image uses by default: ".png" with OpenCV, else ".pgm" (1 channel)
// or ".ppm" (3 channels).
std::string image_extension(int64_t channels);

// [C, H, W] in [-1, 1] → [H, W, C] uint8 (clamped, rounded), the layout image files use.
torch::Tensor to_uint8_hwc(const torch::Tensor& image);

}  // namespace diffuse
