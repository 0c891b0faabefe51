// `diffuse import`: weights trained elsewhere as a diffuse model (interop/weight_import.h).
#include <spdlog/spdlog.h>

#include "args.h"
#include "diffuse/core/error.h"
#include "diffuse/core/text.h"
#include "diffuse/interop/weight_import.h"

namespace diffuse::cli {

int run_import(const std::vector<std::string>& argv) {
  const std::vector<std::string> names = names_of(kImportSourceNames);
  const std::string sources = join(names, " | ");
  Args args("import",
            "Map weights trained elsewhere onto diffuse's networks. A diffusion model is written as an\n"
            "exported model (.safetensors) that diffuse sample, restore, invert and distill take like a\n"
            "checkpoint; a VAE as a VAE file for diffuse sample --vae. Formats:\n"
            "  dit-official      a state dict of github.com/facebookresearch/DiT (e.g. DiT-XL-2-256x256.pt,\n"
            "                    converted to .safetensors: LibTorch cannot unpickle its OrderedDict)\n"
            "  diffusers-dit     diffusers' DiTTransformer2DModel (facebook/DiT-XL-2-256: its transformer/)\n"
            "  diffusers-unet2d  diffusers' UNet2DModel (the DDPM pipelines, e.g. google/ddpm-cifar10-32: its unet/)\n"
            "  diffusers-vae     diffusers' AutoencoderKL (e.g. stabilityai/sd-vae-ft-ema)\n"
            "A diffusers model is its folder, or its diffusion_pytorch_model.safetensors with --config\n"
            "config.json; a pipeline's scheduler/scheduler_config.json next to the folder gives the\n"
            "schedule and prediction. The architecture is read off the shapes and the config.",
            {
                {"--from", "FORMAT", sources},
                {"--weights", "FILE", "the state dict: .safetensors, or a torch.save .pt/.pth file"},
                {"--out", "FILE", "the model to write; its name must end in .safetensors"},
                {"--config", "JSON", "diffusers' config.json (default: the one in the --weights folder)"},
                {"--scheduler", "JSON", "diffusers' scheduler_config.json (default: ../scheduler/ of the --weights folder)"},
                {"--heads", "N", "dit-official: attention heads (default: the paper's for its width, else 64 channels a head)"},
            });
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  ImportOptions o;
  const std::string from = args.require("--from");
  const auto* format = find_by_name(kImportSourceNames, from);
  if (!format) throw UsageError("--from: unknown format '" + from + "'; valid formats: " + join(names));
  o.source = format->value;
  o.weights = args.require("--weights");
  o.out = require_safetensors_path(args, "--out");
  o.config = args.get("--config", "");
  o.scheduler = args.get("--scheduler", "");
  o.num_heads = static_cast<int>(args.get_int("--heads", 0, 1, 4096));
  if (o.num_heads > 0 && o.source != ImportSource::dit_official)
    throw UsageError("--heads: only for --from dit-official (diffusers' config.json gives the heads)");
  const ImportSummary summary = import_weights(o);
  spdlog::info("{}: {}; wrote {} ({} tensors, {:.1f} MB)", o.weights, summary.description, o.out,
               summary.written.tensors, summary.written.bytes / 1e6);
  return 0;
}

}  // namespace diffuse::cli
