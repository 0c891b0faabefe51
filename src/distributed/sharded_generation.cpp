#include "diffuse/distributed/sharded_generation.h"

#include "diffuse/core/error.h"

namespace diffuse {

torch::Tensor generate_samples_across_ranks(Precond& precond, const GenerateOptions& options,
                                            Communicator& communicator, const SamplerCallback& progress) {
  if (!communicator.distributed()) return generate_samples(precond, options, progress);
  if (options.seeds.empty()) throw ConfigError("no seeds to sample");
  if (options.batch_size < 1) throw ConfigError("batch size must be >= 1");
  const auto total = static_cast<int64_t>(options.seeds.size());
  const int64_t batch = options.batch_size;
  const int64_t batches = (total + batch - 1) / batch;
  const int64_t ranks = communicator.world_size();
  GenerateOptions mine = options;
  mine.seeds.clear();
  mine.labels.clear();
  for (int64_t b = communicator.rank(); b < batches; b += ranks)
    for (int64_t k = b * batch; k < std::min(total, (b + 1) * batch); ++k) {
      mine.seeds.push_back(options.seeds[static_cast<size_t>(k)]);
      // Labels cycle over the seeds of the whole run (GenerateOptions::labels).
      if (!options.labels.empty()) mine.labels.push_back(options.labels[static_cast<size_t>(k) % options.labels.size()]);
    }
  const auto& net = precond->net().options();
  torch::Tensor local = mine.seeds.empty()
                            ? torch::zeros({0, net.in_channels, net.image_size, net.image_size})
                            : generate_samples(precond, mine, progress);
  // Every rank sends the same number of rows (rank 0 holds the most batches); the padding
  // is cut off again below.
  const int64_t rows = (batches + ranks - 1) / ranks * batch;
  auto padded = torch::zeros({rows, local.size(1), local.size(2), local.size(3)});
  padded.narrow(0, 0, local.size(0)).copy_(local);
  const auto gathered = communicator.all_gather(padded, "gathering the samples");
  if (!communicator.is_root()) return {};
  auto images = torch::empty({total, local.size(1), local.size(2), local.size(3)});
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t owner = b % ranks, index = b / ranks;
    const int64_t count = std::min(batch, total - b * batch);
    images.narrow(0, b * batch, count).copy_(gathered.narrow(0, owner * rows + index * batch, count));
  }
  return images;
}

}  // namespace diffuse
