#pragma once
// Diffusion Transformer (Peebles & Xie 2023) with adaLN-Zero blocks.
#include <memory>

#include "diffuse/models/diffusion_net.h"

namespace diffuse {

// Builds a DiT from resolved options (ModelOptions::dit plus in_channels, image_size,
// num_classes, learn_sigma). Throws ConfigError naming the key when options do not fit
// (image_size not divisible by patch_size, hidden_size not divisible by num_heads or by 4).
//
// Parameter names follow the reference implementation (facebookresearch/DiT models.py):
// x_embedder, t_embedder.mlp, y_embedder.embedding_table, blocks.i.{attn,mlp,adaln_modulation},
// final_layer.{adaln_modulation,linear}; the fixed position embedding is the buffer pos_embed.
std::shared_ptr<DiffusionNet> make_dit(const ModelOptions& options);

}  // namespace diffuse
