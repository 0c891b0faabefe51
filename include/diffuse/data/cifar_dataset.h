#pragma once
// CIFAR-10 in the binary format (https://www.cs.toronto.edu/~kriz/cifar.html): records of
// 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major 32 × 32).
#include <memory>
#include <string>
#include <vector>

#include "diffuse/data/data_options.h"
#include "diffuse/data/image_tensor_dataset.h"

namespace diffuse {

inline constexpr int64_t kCifarRecordBytes = 3073;

// The standard CIFAR-10 class names, in label order.
const std::vector<std::string>& cifar10_class_names();

// Loads data_batch_1..5.bin (split train) or test_batch.bin (split test) from options.path;
// class names from batches.meta.txt when present.
std::shared_ptr<ImageTensorDataset> load_cifar10_dataset(const DataOptions& options);

}  // namespace diffuse
