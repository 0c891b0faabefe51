#include "diffuse/data/dataset.h"

#include <ATen/Parallel.h>

#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/data/cifar_dataset.h"
#include "diffuse/data/coupling_dataset.h"
#include "diffuse/data/idx_dataset.h"
#include "diffuse/data/image_folder_dataset.h"
#include "diffuse/data/latent_dataset.h"
#include "diffuse/data/random_dataset.h"

namespace diffuse {

std::shared_ptr<Dataset> make_dataset(const DataOptions& options) {
  std::shared_ptr<Dataset> dataset;
  switch (options.type) {
    case DatasetType::idx: dataset = load_idx_dataset(options); break;
    case DatasetType::cifar10: dataset = load_cifar10_dataset(options); break;
    case DatasetType::image_folder: dataset = load_image_folder_dataset(options); break;
    case DatasetType::latents: dataset = std::make_shared<LatentDataset>(options); break;
    case DatasetType::random: dataset = make_random_dataset(options); break;
    case DatasetType::couplings: dataset = std::make_shared<CouplingDataset>(options); break;
  }
  if (!dataset) throw std::logic_error("make_dataset: unhandled dataset type");
  if (dataset->info().size == 0)
    throw DataError(options.path + ": dataset is empty (split " + options.split + ")");
  return dataset;
}

ChannelStats compute_channel_stats(const Dataset& dataset, bool parallel) {
  const DatasetInfo& info = dataset.info();
  const int64_t channels = info.channels;
  const int64_t size = info.size;
  // Var = E[x²] - E[x]², from sums Σx and Σx² in double (ample for ~10⁸ pixels in [-1, 1]).
  // Sums are kept per fixed chunk and combined in order, so the thread count cannot change
  // the result.
  constexpr int64_t kChunk = 256;
  const int64_t chunks = (size + kChunk - 1) / kChunk;
  std::vector<double> sums(static_cast<size_t>(chunks * channels * 2), 0.0);
  std::vector<int64_t> counts(static_cast<size_t>(chunks), 0);
  const auto work = [&](int64_t chunk_begin, int64_t chunk_end) {
    for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
      double* sum = sums.data() + chunk * channels * 2;
      for (int64_t i = chunk * kChunk; i < std::min(size, (chunk + 1) * kChunk); ++i) {
        const torch::Tensor image = dataset.get(i).image.to(torch::kFloat32).contiguous();
        const int64_t plane = image.size(1) * image.size(2);
        const float* data = image.data_ptr<float>();
        for (int64_t c = 0; c < channels; ++c) {
          double s = 0.0, s2 = 0.0;
          for (int64_t p = 0; p < plane; ++p) {
            const double v = data[c * plane + p];
            s += v;
            s2 += v * v;
          }
          sum[2 * c] += s;
          sum[2 * c + 1] += s2;
        }
        counts[static_cast<size_t>(chunk)] += plane;
      }
    }
  };
  if (parallel) {
    at::parallel_for(0, chunks, 1, work);
  } else {
    work(0, chunks);
  }
  ChannelStats stats;
  int64_t total = 0;
  for (int64_t n : counts) total += n;
  for (int64_t c = 0; c < channels; ++c) {
    double s = 0.0, s2 = 0.0;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      s += sums[static_cast<size_t>(chunk * channels * 2 + 2 * c)];
      s2 += sums[static_cast<size_t>(chunk * channels * 2 + 2 * c + 1)];
    }
    const double mean = total > 0 ? s / static_cast<double>(total) : 0.0;
    const double variance = total > 0 ? std::max(0.0, s2 / static_cast<double>(total) - mean * mean) : 0.0;
    stats.mean.push_back(mean);
    stats.std.push_back(std::sqrt(variance));
  }
  return stats;
}

}  // namespace diffuse
