#include "diffuse/data/image_transform.h"

#include <algorithm>
#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/io/image_io.h"

namespace diffuse {

namespace {

// x / 127.5 - 1 maps the uint8 range [0, 255] onto [-1, 1] exactly at both ends.
constexpr float kPixelScale = 1.0f / 127.5f;

}  // namespace

std::pair<int64_t, int64_t> scaled_size(int64_t height, int64_t width, int64_t resolution) {
  if (height <= width) {
    const auto scaled = static_cast<int64_t>(std::lround(static_cast<double>(width) * resolution / height));
    return {resolution, std::max(scaled, resolution)};
  }
  const auto scaled = static_cast<int64_t>(std::lround(static_cast<double>(height) * resolution / width));
  return {std::max(scaled, resolution), resolution};
}

std::vector<int64_t> ImageTransform::output_shape(int64_t channels_in, int64_t height_in,
                                                  int64_t width_in) const {
  const int64_t c = channels > 0 ? channels : channels_in;
  if (resolution > 0) return {c, resolution, resolution};
  return {c, height_in, width_in};
}

torch::Tensor convert_channels(const torch::Tensor& image, int64_t channels) {
  const int64_t have = image.size(0);
  if (channels == 0 || channels == have) return image;
  if (have == 1 && channels == 3) return image.expand({3, image.size(1), image.size(2)}).contiguous();
  if (have == 3 && channels == 1) return rgb_to_grey(image);
  throw DataError("cannot convert an image with " + std::to_string(have) + " channels to " +
                  std::to_string(channels) + " channels (supported: 1 <-> 3)");
}

torch::Tensor resize_center_crop(const torch::Tensor& image, int64_t resolution) {
  const int64_t height = image.size(1), width = image.size(2);
  if (resolution <= 0 || (height == resolution && width == resolution)) return image;
  const auto [new_height, new_width] = scaled_size(height, width, resolution);
  torch::Tensor resized = image;
  if (new_height != height || new_width != width) {
    namespace F = torch::nn::functional;
    const bool shrinking = new_height < height;
    auto options = F::InterpolateFuncOptions().size(std::vector<int64_t>{new_height, new_width});
    if (shrinking) {
      options.mode(torch::kArea);
    } else {
      options.mode(torch::kBicubic).align_corners(false);
    }
    resized = F::interpolate(image.unsqueeze(0), options).squeeze(0);
  }
  const int64_t top = (new_height - resolution) / 2;
  const int64_t left = (new_width - resolution) / 2;
  return resized.narrow(1, top, resolution).narrow(2, left, resolution).contiguous();
}

torch::Tensor ImageTransform::operator()(const torch::Tensor& pixels) const {
  const int64_t c = pixels.size(0), h = pixels.size(1), w = pixels.size(2);
  const bool same_size = resolution == 0 || (h == resolution && w == resolution);
  const bool same_channels = channels == 0 || channels == c;
  if (same_size && same_channels) {
    // Fast path (the usual case): one pass over the bytes.
    torch::Tensor out = torch::empty({c, h, w}, torch::kFloat32);
    const torch::Tensor source = pixels.contiguous();
    const uint8_t* in = source.data_ptr<uint8_t>();
    float* dst = out.data_ptr<float>();
    const int64_t count = c * h * w;
    for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<float>(in[i]) * kPixelScale - 1.0f;
    return out;
  }
  torch::Tensor image = pixels.to(torch::kFloat32);
  image = convert_channels(image, channels);
  image = resize_center_crop(image, resolution);
  // Bicubic overshoot is clamped back into the pixel range before scaling.
  return image.clamp(0.0, 255.0).mul(kPixelScale).sub(1.0);
}

}  // namespace diffuse
