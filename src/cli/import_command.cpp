// `diffuse import`: weights trained elsewhere as a diffuse model (interop/weight_import.h).
#include <spdlog/spdlog.h>

#include "args.h"
#include "diffuse/core/error.h"
#include "diffuse/interop/weight_import.h"
#include "diffuse/io/safetensors.h"

namespace diffuse::cli {

int run_import(const std::vector<std::string>& argv) {
  std::string sources;
  for (const auto& entry : kImportSourceNames) sources += (sources.empty() ? "" : " | ") + std::string(entry.name);
  Args args("import",
            "Map weights trained elsewhere onto diffuse's networks and write them as an exported model\n"
            "(.safetensors) that diffuse sample, restore, invert and distill take like a checkpoint.\n"
            "dit-official: a state dict of github.com/facebookresearch/DiT (e.g. DiT-XL-2-256x256.pt);\n"
            "the architecture is read off the shapes.",
            {
                {"--from", "FORMAT", sources},
                {"--weights", "FILE", "the state dict: .safetensors, or a torch.save .pt/.pth file"},
                {"--out", "FILE", "the model to write; its name must end in .safetensors"},
            });
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  ImportOptions o;
  const std::string from = args.require("--from");
  bool known = false;
  for (const auto& entry : kImportSourceNames)
    if (from == entry.name) o.source = entry.value, known = true;
  if (!known) throw UsageError("--from: unknown format '" + from + "'; valid formats: " + sources);
  o.weights = args.require("--weights");
  o.out = args.require("--out");
  if (!is_safetensors_path(o.out)) throw UsageError("--out: expected a file name ending in .safetensors, found '" + o.out + "'");
  const ImportSummary summary = import_weights(o);
  spdlog::info("{}: {}; wrote {} ({} tensors, {:.1f} MB)", o.weights, summary.description, o.out,
               summary.written.tensors, summary.written.bytes / 1e6);
  return 0;
}

}  // namespace diffuse::cli
