#pragma once
// Host-to-device copies that never make the host wait.
#include <torch/torch.h>

namespace diffuse {

// `host` (a CPU tensor) on `device`. For CUDA the data goes through page-locked memory and a
// non-blocking copy queued on the current stream, so the host thread runs ahead of the GPU
// instead of synchronising (a copy from pageable memory would stall until it completes).
// On the CPU it is returned as it is.
torch::Tensor copy_to_device(const torch::Tensor& host, const torch::Device& device);

}  // namespace diffuse
