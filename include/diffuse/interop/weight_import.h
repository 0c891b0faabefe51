#pragma once
// Weights trained elsewhere, mapped onto diffuse's networks and written as an exported model
// (train/model_export.h) that sample/restore/invert/distill take like a checkpoint. One table
// entry per source format: its --from name, what it reads, and the mapping function.
#include <array>
#include <string>

#include "diffuse/core/config_node.h"
#include "diffuse/train/model_export.h"

namespace diffuse {

enum class ImportSource { dit_official };
inline constexpr std::array<EnumName<ImportSource>, 1> kImportSourceNames{{
    {"dit-official", ImportSource::dit_official},
}};

struct ImportOptions {
  ImportSource source = ImportSource::dit_official;
  std::string weights;  // a state dict: .safetensors, or a torch.save .pt/.pth file
  std::string out;      // the exported model to write (.safetensors)
};

struct ImportSummary {
  ExportSummary written;
  std::string description;  // the architecture found, e.g. "DiT depth 28, hidden 1152, ..."
};

// Reads `weights`, infers the architecture from its shapes, checks that every tensor has its
// place (a missing, extra or misshapen key is a CheckpointError naming it in the source's own
// names) and writes `out`.
ImportSummary import_weights(const ImportOptions& options);

}  // namespace diffuse
