#pragma once
// Diffusion Transformer (Peebles & Xie 2023) with adaLN-Zero blocks.
#include <memory>

#include "diffuse/models/diffusion_net.h"

namespace diffuse {

// Builds a DiT from resolved options (ModelOptions::dit plus in_channels, image_size,
// num_classes, learn_sigma). Throws ConfigError naming the key when options do not fit.
std::shared_ptr<DiffusionNet> make_dit(const ModelOptions& options);

}  // namespace diffuse
