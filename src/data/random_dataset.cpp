#include "diffuse/data/random_dataset.h"

#include <string>
#include <vector>

#include "diffuse/core/error.h"

namespace diffuse {

std::shared_ptr<ImageTensorDataset> make_random_dataset(const DataOptions& options) {
  constexpr int64_t kDefaultSize = 1024;
  constexpr int64_t kClasses = 10;
  constexpr uint64_t kSeed = 0;
  if (options.resolution <= 0)
    throw ConfigError("data.resolution: the random dataset needs an image size > 0, found " +
                      std::to_string(options.resolution));
  // Any channel count: synthetic latents (4 channels) benchmark latent models as well.
  if (options.channels < 1)
    throw ConfigError("data.channels: the random dataset needs a channel count >= 1, found " +
                      std::to_string(options.channels));
  const int64_t size = options.limit > 0 ? options.limit : kDefaultSize;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(kSeed);
  auto pixels = torch::randint(0, 256, {size, options.channels, options.resolution, options.resolution},
                               gen, torch::kUInt8);
  auto labels = torch::arange(size, torch::kInt64).remainder(kClasses);
  std::vector<std::string> class_names;
  for (int64_t k = 0; k < kClasses; ++k) class_names.push_back("class" + std::to_string(k));
  return std::make_shared<ImageTensorDataset>(std::move(pixels), std::move(labels),
                                              std::move(class_names), ImageTransform{}, 0);
}

}  // namespace diffuse
