#pragma once
// "[2, 3, 8, 8]": tensor shapes in messages.
#include <torch/torch.h>

#include <string>

#include "diffuse/core/text.h"

namespace diffuse {

inline std::string shape_text(torch::IntArrayRef sizes) { return "[" + join(sizes, ", ") + "]"; }

}  // namespace diffuse
