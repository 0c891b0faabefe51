#include "diffuse/core/device_copy.h"

namespace diffuse {

torch::Tensor copy_to_device(const torch::Tensor& host, const torch::Device& device) {
  if (!device.is_cuda() || host.device() == device) return host.to(device);
  const auto pinned = host.is_pinned() ? host : host.pin_memory();
  return pinned.to(device, /*non_blocking=*/true);
}

}  // namespace diffuse
