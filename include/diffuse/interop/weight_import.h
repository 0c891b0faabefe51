#pragma once
// Weights trained elsewhere, mapped onto diffuse's networks: a diffusion network is written
// as an exported model (train/model_export.h) that sample/restore/invert/distill take like a
// checkpoint, a VAE as a VAE file. One table entry per source format (its --from name); the
// mapping of each lives in weight_import.cpp.
#include <array>
#include <string>

#include "diffuse/core/config_node.h"
#include "diffuse/models/autoencoder_kl.h"
#include "diffuse/train/model_export.h"

namespace diffuse {

enum class ImportSource { dit_official, diffusers_dit, diffusers_unet2d, diffusers_vae };
inline constexpr std::array<EnumName<ImportSource>, 4> kImportSourceNames{{
    {"dit-official", ImportSource::dit_official},
    {"diffusers-dit", ImportSource::diffusers_dit},
    {"diffusers-unet2d", ImportSource::diffusers_unet2d},
    {"diffusers-vae", ImportSource::diffusers_vae},
}};

struct ImportOptions {
  ImportSource source = ImportSource::dit_official;
  // A state dict: .safetensors, or a torch.save .pt/.pth file; or a diffusers model folder
  // (save_pretrained: diffusion_pytorch_model.safetensors and config.json).
  std::string weights;
  std::string out;     // the file to write (.safetensors)
  std::string config;  // optional diffusers config.json ("" : the folder's, else shapes and defaults)
  // Optional diffusers scheduler_config.json of the pipeline ("" : the scheduler/ folder next
  // to a --weights folder, else DDPM's linear β schedule over 1000 steps, ε prediction).
  std::string scheduler;
  int num_heads = 0;   // dit-official: attention heads (0: the paper's for its widths, else 64 channels a head)
};

struct ImportSummary {
  ExportSummary written;
  std::string description;  // the architecture found, e.g. "DiT depth 28, hidden 1152, ..."
};

// Reads `weights`, infers the architecture from its shapes, checks that every tensor has its
// place (a missing, extra or misshapen key is a CheckpointError naming it in the source's own
// names) and writes `out`.
ImportSummary import_weights(const ImportOptions& options);

// VAE files (diffuse import --from diffusers-vae): the AutoencoderKL weights under diffusers'
// names, its options as JSON in the __metadata__ ("format": diffuse-vae-1). Returns the data
// bytes written.
uint64_t write_vae(const std::string& path, AutoencoderKL& vae);
// Loads a VAE file onto `device` in eval mode; a CheckpointError names the path otherwise.
AutoencoderKL load_vae(const std::string& path, torch::Device device);

}  // namespace diffuse
