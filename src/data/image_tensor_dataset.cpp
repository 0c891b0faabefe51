#include "diffuse/data/image_tensor_dataset.h"

#include "diffuse/core/error.h"

namespace diffuse {

ImageTensorDataset::ImageTensorDataset(torch::Tensor pixels, torch::Tensor labels,
                                       std::vector<std::string> class_names,
                                       ImageTransform transform, int64_t limit)
    : transform_(transform) {
  TORCH_CHECK(pixels.dim() == 4 && pixels.scalar_type() == torch::kUInt8,
              "ImageTensorDataset: pixels must be [N, C, H, W] uint8");
  TORCH_CHECK(labels.dim() == 1 && labels.size(0) == pixels.size(0),
              "ImageTensorDataset: labels must be [N] with N = number of images");
  int64_t count = pixels.size(0);
  if (limit > 0 && limit < count) count = limit;
  pixels_ = pixels.narrow(0, 0, count).contiguous();
  const torch::Tensor kept = labels.narrow(0, 0, count).to(torch::kInt64).contiguous();
  labels_.assign(kept.data_ptr<int64_t>(), kept.data_ptr<int64_t>() + count);
  const auto shape = transform_.output_shape(pixels.size(1), pixels.size(2), pixels.size(3));
  info_.size = count;
  info_.channels = shape[0];
  info_.height = shape[1];
  info_.width = shape[2];
  info_.class_names = std::move(class_names);
}

Example ImageTensorDataset::get(int64_t index) const {
  if (index < 0 || index >= info_.size)
    throw DataError("dataset index " + std::to_string(index) + " out of range [0, " +
                    std::to_string(info_.size) + ")");
  return {transform_(pixels_[index]), labels_[static_cast<size_t>(index)]};
}

}  // namespace diffuse
