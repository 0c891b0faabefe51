#pragma once
// ADM/DDPM-style UNet (Ho et al. 2020; Dhariwal & Nichol 2021).
#include <memory>

#include "diffuse/models/diffusion_net.h"

namespace diffuse {

// Builds a UNet from resolved options (ModelOptions::unet plus in_channels, image_size,
// num_classes, learn_sigma). Throws ConfigError naming the key when options do not fit
// (e.g. model.unet.num_groups must divide every base_channels × channel_mult; num_heads or
// head_channels must divide the width of every attention layer).
//
// Layout (ADM): per level of channel_mult, num_res_blocks ResBlocks (+ attention where the
// feature map's side, starting at image_size and halved rounding up per level, is listed in
// attention_resolutions), a Res-Attention-Res middle, and a mirrored decoder with
// num_res_blocks + 1 ResBlocks per level over the concatenated skips. Odd sizes work
// (28 → 14 → 7 → 4 → 7 → 14 → 28): upsampling restores each skip's exact size.
// attention_resolutions may list sizes that occur at no level (a preset can serve several
// image sizes); a list none of whose sizes occurs only logs a warning.
//
// forward() throws DataError, naming the shapes, when x is not [B, in_channels, H, W],
// noise_cond is not [B], or labels are undefined for a conditional model (num_classes > 0;
// label num_classes is the null class) or defined for an unconditional one.
std::shared_ptr<DiffusionNet> make_unet(const ModelOptions& options);

}  // namespace diffuse
