#pragma once
// MNIST / Fashion-MNIST in the IDX format (http://yann.lecun.com/exdb/mnist/): files
// {train,t10k}-{images-idx3,labels-idx1}-ubyte, raw or gzip-compressed (.gz).
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "diffuse/data/data_options.h"
#include "diffuse/data/image_tensor_dataset.h"

namespace diffuse {

inline constexpr uint32_t kIdxImagesMagic = 0x00000803;  // ubyte, 3 dimensions
inline constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // ubyte, 1 dimension

// [N, 1, H, W] uint8 from an idx3 image file; throws DataError naming the file on a wrong
// magic number (expected vs found, hex) or a truncated file.
torch::Tensor read_idx_images(const std::string& path);
// [N] int64 from an idx1 label file.
torch::Tensor read_idx_labels(const std::string& path);

// The ten Fashion-MNIST class names, in label order.
const std::vector<std::string>& fashion_mnist_class_names();

// Loads split options.split ("train" → train-*, "test" → t10k-*) from folder options.path.
// The files are looked up as <prefix>-images-idx3-ubyte.gz, then without .gz. Class names
// are the Fashion-MNIST names when the folder path contains "fashion" (case-insensitive;
// Fashion-MNIST and MNIST files are otherwise indistinguishable), else "0".."9".
std::shared_ptr<ImageTensorDataset> load_idx_dataset(const DataOptions& options);

}  // namespace diffuse
