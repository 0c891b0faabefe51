#pragma once
// Sampling on several ranks: the seeds are cut into the batches one process would run, batch
// b goes to rank b mod world_size, and rank 0 gathers the images back in seed order. Every
// batch holds the same seeds as in a single-process run, so the images are the same.
#include <torch/torch.h>

#include "diffuse/distributed/communicator.h"
#include "diffuse/precond/precond.h"
#include "diffuse/sampling/generate.h"

namespace diffuse {

// On rank 0: [N, C, H, W] float32 on the CPU, as generate_samples returns for all the
// seeds. On the other ranks: an undefined tensor. `progress` counts this rank's NFE.
torch::Tensor generate_samples_across_ranks(Precond& precond, const GenerateOptions& options,
                                            Communicator& communicator, const SamplerCallback& progress = {});

}  // namespace diffuse
