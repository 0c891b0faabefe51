#pragma once
// ADM/DDPM-style UNet (Ho et al. 2020; Dhariwal & Nichol 2021).
#include <memory>

#include "diffuse/models/diffusion_net.h"

namespace diffuse {

// Builds a UNet from resolved options (ModelOptions::unet plus in_channels, image_size,
// num_classes, learn_sigma). Throws ConfigError naming the key when options do not fit.
std::shared_ptr<DiffusionNet> make_unet(const ModelOptions& options);

}  // namespace diffuse
