#pragma once
// Synthetic images for benchmarks and smoke tests (`data.type: random`): uniform random
// pixels drawn once from a fixed seed, labels cycling over 10 classes. It measures the
// training loop without any disk or decoding cost (scripts/bench.sh).
#include <memory>

#include "diffuse/data/data_options.h"
#include "diffuse/data/image_tensor_dataset.h"

namespace diffuse {

// Needs data.resolution > 0 and data.channels > 0 (any count); data.limit items (default 1024).
// Throws ConfigError naming the key otherwise.
std::shared_ptr<ImageTensorDataset> make_random_dataset(const DataOptions& options);

}  // namespace diffuse
