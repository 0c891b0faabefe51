#include "diffuse/distributed/sharded_generation.h"

#include "diffuse/core/error.h"
#include "diffuse/core/round_robin.h"

namespace diffuse {

torch::Tensor generate_samples_across_ranks(Precond& precond, const GenerateOptions& options,
                                            Communicator& communicator, const SamplerCallback& progress) {
  if (!communicator.distributed()) return generate_samples(precond, options, progress);
  if (options.seeds.empty()) throw ConfigError("no seeds to sample");
  if (options.batch_size < 1) throw ConfigError("batch size must be >= 1");
  const RoundRobinBatches layout{static_cast<int64_t>(options.seeds.size()), options.batch_size,
                                 communicator.world_size()};
  GenerateOptions mine = options;
  mine.seeds.clear();
  mine.labels.clear();
  for (const auto& batch : layout.batches_of(communicator.rank()))
    for (int64_t k = batch.begin; k < batch.end; ++k) {
      mine.seeds.push_back(options.seeds[static_cast<size_t>(k)]);
      // Labels cycle over the seeds of the whole run (GenerateOptions::labels).
      if (!options.labels.empty()) mine.labels.push_back(options.labels[static_cast<size_t>(k) % options.labels.size()]);
    }
  const auto& net = precond->net().options();
  torch::Tensor local = mine.seeds.empty()
                            ? torch::zeros({0, net.in_channels, net.image_size, net.image_size})
                            : generate_samples(precond, mine, progress);
  // Every rank sends the same number of rows (rank 0 holds the most batches); the padding
  // is cut off again by reassemble.
  const auto gathered = communicator.all_gather(layout.pad(local), "gathering the samples");
  if (!communicator.is_root()) return {};
  return layout.reassemble(gathered);
}

}  // namespace diffuse
