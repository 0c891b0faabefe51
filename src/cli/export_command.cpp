// `diffuse export`: a checkpoint's weights as a safetensors file (train/model_export.h).
#include <spdlog/spdlog.h>

#include "args.h"
#include "diffuse/train/model_export.h"

namespace diffuse::cli {

int run_export(const std::vector<std::string>& argv) {
  Args args("export",
            "Write the EMA weights of a checkpoint (or the raw ones with --no-ema) as a safetensors\n"
            "file, with the resolved config, the training step and the class names in its\n"
            "__metadata__. Python reads it with safetensors.torch.load_file; diffuse sample,\n"
            "restore, invert and distill take it wherever they take a checkpoint.",
            {
                {"--checkpoint", "CKPT", "a checkpoint written by diffuse train (or an exported file)"},
                {"--out", "FILE", "the file to write; its name must end in .safetensors"},
                {"--no-ema", "", "export the raw weights instead of the EMA weights"},
            });
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  const std::string checkpoint = args.require("--checkpoint");
  const std::string out = require_safetensors_path(args, "--out");
  const ExportSummary summary = export_model(checkpoint, out, !args.has("--no-ema"));
  spdlog::info("wrote {}: {} tensors, {:.1f} MB, {} weights of step {}", out, summary.tensors, summary.bytes / 1e6,
               summary.weights, summary.step);
  return 0;
}

}  // namespace diffuse::cli
