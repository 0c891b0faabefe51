#pragma once
// Short names for a few items of a standard dataset, for commands that take test images
// from a dataset instead of files (diffuse restore --input fashion:test[0:64]):
//   fashion:<split>[<begin>:<end>]   Fashion-MNIST from $FASHION_MNIST_DIR or
//                                    /usr/share/datasets/fashion-mnist
//   mnist:<split>[<begin>:<end>]     MNIST from $MNIST_DIR
//   cifar10:<split>[<begin>:<end>]   CIFAR-10 binary from $CIFAR10_DIR
// with split train or test and the item range [begin, end).
#include <cstdint>
#include <string>

#include "diffuse/data/data_loader.h"
#include "diffuse/data/data_options.h"

namespace diffuse {

struct DatasetSlice {
  DataOptions data;
  int64_t begin = 0;
  int64_t end = 0;
};

// True when `text` has the shape name:split[...] (so a caller can tell it from a file path).
bool looks_like_dataset_slice(const std::string& text);

// Parses `text`; throws DataError listing the valid forms on anything else, or naming the
// environment variable that must point at the dataset folder.
DatasetSlice parse_dataset_slice(const std::string& text);

// Items [begin, end) of the sliced dataset as one batch (throws DataError when the range
// passes the end of the dataset).
Batch load_dataset_slice(const DatasetSlice& slice);

}  // namespace diffuse
