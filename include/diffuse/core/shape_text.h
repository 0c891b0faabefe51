#pragma once
// "[2, 3, 8, 8]": tensor shapes in messages.
#include <torch/torch.h>

#include <string>

namespace diffuse {

inline std::string shape_text(torch::IntArrayRef sizes) {
  std::string text = "[";
  for (size_t d = 0; d < sizes.size(); ++d) text += (d ? ", " : "") + std::to_string(sizes[d]);
  return text + "]";
}

}  // namespace diffuse
