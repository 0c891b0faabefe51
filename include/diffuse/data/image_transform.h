#pragma once
// The deterministic per-item transforms every image dataset applies in `get`: uint8 pixels
// → float, channel conversion (1 ↔ 3), resize of the shorter side + centre crop, and the
// affine map [0, 255] → [-1, 1] (x / 127.5 - 1).
#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace diffuse {

struct ImageTransform {
  int64_t channels = 0;    // 1 or 3; 0 keeps the input's channel count
  int64_t resolution = 0;  // output H = W; 0 keeps the input size

  // Output shape [C, H, W] for an input of the given shape.
  std::vector<int64_t> output_shape(int64_t channels_in, int64_t height_in,
                                    int64_t width_in) const;

  // `pixels`: [C, H, W] uint8 (contiguous). Returns [C', H', W'] float32 in [-1, 1].
  torch::Tensor operator()(const torch::Tensor& pixels) const;
};

// 3 → 1 uses the ITU-R BT.601 luma weights (0.299 R + 0.587 G + 0.114 B, as OpenCV's
// RGB2GRAY); 1 → 3 repeats the grey channel. Works on float [C, H, W] tensors.
torch::Tensor convert_channels(const torch::Tensor& image, int64_t channels);

// Scales the shorter side of a float [C, H, W] image to `resolution` (area averaging when
// shrinking, bicubic when enlarging, the same choice as INTER_AREA / INTER_CUBIC) and crops
// the centre `resolution` × `resolution` square.
torch::Tensor resize_center_crop(const torch::Tensor& image, int64_t resolution);

// Size (height, width) after scaling the shorter side of (height, width) to `resolution`,
// keeping the aspect ratio (rounded to the nearest pixel, at least `resolution`).
std::pair<int64_t, int64_t> scaled_size(int64_t height, int64_t width, int64_t resolution);

}  // namespace diffuse
