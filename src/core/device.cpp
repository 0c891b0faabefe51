#include "diffuse/core/device.h"

#include <regex>

#include "diffuse/core/error.h"

namespace diffuse {

bool is_device_name(const std::string& text) {
  static const std::regex kDevice("auto|cpu|cuda|cuda:(0|[1-9][0-9]?)");
  return std::regex_match(text, kDevice);
}

torch::Device resolve_device(const std::string& text, const std::string& what) {
  // LibTorch's own parser takes more than the documented names (other backends, "cpu:0").
  if (!is_device_name(text))
    throw ConfigError(what + ": unknown device '" + text +
                      "'; valid devices: auto, cpu, cuda, cuda:N");
  if (text == "auto")
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0)
                                       : torch::Device(torch::kCPU);
  torch::Device device(text);
  if (device.is_cuda()) {
    if (!torch::cuda::is_available())
      throw ConfigError(what + ": device '" + text +
                        "' asked for, but this build or machine has no CUDA");
    const int64_t index = device.has_index() ? device.index() : 0;
    if (index >= static_cast<int64_t>(torch::cuda::device_count()))
      throw ConfigError(what + ": device '" + text + "' does not exist (" +
                        std::to_string(torch::cuda::device_count()) + " CUDA devices)");
    if (!device.has_index()) device = torch::Device(torch::kCUDA, 0);
  }
  return device;
}

}  // namespace diffuse
