#pragma once
// A dataset of same-sized uint8 images held in one [N, C, H, W] tensor, with labels and
// class names; `get` applies an ImageTransform. The IDX, CIFAR-10 and image-folder readers
// decode their files into one of these.
#include <torch/torch.h>

#include <string>
#include <vector>

#include "diffuse/data/dataset.h"
#include "diffuse/data/image_transform.h"

namespace diffuse {

class ImageTensorDataset : public Dataset {
 public:
  // `pixels`: [N, C, H, W] uint8; `labels`: [N] int64; `limit` > 0 keeps the first N items.
  ImageTensorDataset(torch::Tensor pixels, torch::Tensor labels,
                     std::vector<std::string> class_names, ImageTransform transform,
                     int64_t limit = 0);

  const DatasetInfo& info() const override { return info_; }
  Example get(int64_t index) const override;

  const torch::Tensor& pixels() const { return pixels_; }

 private:
  torch::Tensor pixels_;
  std::vector<int64_t> labels_;
  ImageTransform transform_;
  DatasetInfo info_;
};

}  // namespace diffuse
