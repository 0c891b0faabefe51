#pragma once
// The data: section of an experiment config. Keys, valid values and meanings are described
// once, by data_options_schema() (README.md "Config reference").
#include <array>
#include <cstdint>
#include <string>

#include "diffuse/core/option_schema.h"

namespace diffuse {

// The largest image side and channel count that datasets and networks accept.
inline constexpr int64_t kMaxImageSize = 4096;
inline constexpr int64_t kMaxImageChannels = 1024;

enum class DatasetType { idx, cifar10, image_folder, latents, random, couplings };
inline constexpr std::array<EnumName<DatasetType>, 6> kDatasetTypeNames{{
    {"idx", DatasetType::idx},
    {"cifar10", DatasetType::cifar10},
    {"image_folder", DatasetType::image_folder},
    {"latents", DatasetType::latents},
    {"random", DatasetType::random},
    {"couplings", DatasetType::couplings},  // (noise, sample) pairs of diffuse reflow
}};

struct DataOptions {
  DatasetType type = DatasetType::idx;
  std::string path = "/usr/share/datasets/fashion-mnist";
  std::string split = "train";
  int resolution = 0;  // 0 keeps the native size
  int channels = 0;    // 0 keeps the native channel count
  bool hflip = false;
  bool allow_upscale = false;
  bool skip_corrupt = false;
  int64_t limit = 0;  // 0 = all
  int num_workers = 2;
  int prefetch_batches = 4;
};

const OptionSchema<DataOptions>& data_options_schema();

}  // namespace diffuse
