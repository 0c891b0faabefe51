#pragma once
// Device names of the config and the flags: auto | cpu | cuda | cuda:N.
#include <torch/torch.h>

#include <string>

namespace diffuse {

// Whether `text` is a device name of the config and flags: auto, cpu, cuda or cuda:N.
bool is_device_name(const std::string& text);

// Parses "auto" | "cpu" | "cuda" | "cuda:N" (ConfigError naming `what` on bad text or a
// CUDA device that is not there). "auto" picks cuda:0 when available.
torch::Device resolve_device(const std::string& text, const std::string& what);

}  // namespace diffuse
