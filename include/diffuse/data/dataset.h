#pragma once
// The dataset interface (DESIGN §2, data/). A dataset holds its decoded data in memory
// (uint8 pixels, or float latents) and converts one item per `get`, applying only
// deterministic transforms; random augmentation (horizontal flip) belongs to the DataLoader
// so that it can be derived from (seed, epoch, index) and replayed exactly on resume.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/data/data_options.h"

namespace diffuse {

struct Example {
  torch::Tensor image;  // [C, H, W] float32 in [-1, 1] (latents: unscaled)
  int64_t label;
  torch::Tensor noise{};  // couplings: the noise the image was generated from, like image; else undefined
};

struct DatasetInfo {
  int64_t size = 0;
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  std::vector<std::string> class_names;  // label k is named class_names[k]
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual const DatasetInfo& info() const = 0;
  // Item `index` in [0, size). Thread-safe: the loader calls it from several threads.
  virtual Example get(int64_t index) const = 0;
};

// Builds the dataset described by `options` (dispatch on options.type). Throws DataError
// naming the file or folder when the data is missing, corrupt or does not fit the options.
std::shared_ptr<Dataset> make_dataset(const DataOptions& options);

// Per-channel mean and standard deviation of every pixel of every item, in the dataset's
// output space ([-1, 1] for images), accumulated in double; `parallel` spreads the items over
// the LibTorch intra-op thread pool (identical result: fixed chunks, summed in order).
struct ChannelStats {
  std::vector<double> mean;
  std::vector<double> std;
};
ChannelStats compute_channel_stats(const Dataset& dataset, bool parallel = true);

}  // namespace diffuse
