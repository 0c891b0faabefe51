// The diffuse command line as a function: what `diffuse ARGS...` prints and returns, so that
// the binary's main is one call and the CLI tests can run a command without starting a
// process (test::run_diffuse_forked, tests/support/run_command.h).
#include "command_line.h"

#include <spdlog/spdlog.h>

#include <iostream>
#include <string>
#include <vector>

#include "args.h"
#include "diffuse/core/blas_info.h"
#include "diffuse/core/compat.h"
#include "diffuse/core/error.h"
#include "diffuse/core/text.h"
#include "diffuse/version.h"

namespace diffuse::cli {
namespace {

// The subcommands: one row each (name, usage line, entry point).
struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& argv);
};

const std::vector<Command>& commands() {
  static const std::vector<Command> table{
      {"train", "train a diffusion model from a YAML config (also consistency distillation)",
       run_train},
      {"reflow",
       "draw a flow model's (noise, sample) couplings and retrain on them (rectified flow)",
       run_reflow},
      {"sample", "generate images from a checkpoint", run_sample},
      {"restore", "solve an inverse problem (inpainting, deblurring, super-resolution) with DPS",
       run_restore},
      {"invert", "DDIM inversion: images to their noise and back, with the round trip's PSNR",
       run_invert},
      {"distill",
       "optimise images, neural fields or voxel volumes with the model as prior (SDS, VSD, SDI)",
       run_distill},
      {"export",
       "write a checkpoint's weights and config as a safetensors file (for Python and sharing)",
       run_export},
      {"import",
       "map weights trained elsewhere (the DiT repository's, diffusers' VAE) onto diffuse",
       run_import},
      {"encode", "images to the latents of a VAE (for latent diffusion: data.type latents)",
       run_encode},
      {"eval", "FD, KID, precision/recall and class accuracy of generated images", run_eval},
      {"info", "summarise a dataset (--config) or a checkpoint (--checkpoint)", run_info},
      {"plot", "draw a run's loss and metric curves (RUN_DIR/curves.png)", run_plot},
      {"config", "print the reference of every config and restore-task key (--reference)",
       run_config},
  };
  return table;
}

std::string usage() {
  std::string text = "usage: diffuse <command> [flags]\n\ncommands:\n";
  for (const auto& command : commands()) {
    std::string name = command.name;
    text += "  " + name + std::string(10 - name.size(), ' ') + command.summary + "\n";
  }
  return text +
         "\n"
         "Run 'diffuse <command> --help' for the flags of a command.\n"
         "  diffuse --version   print the version\n";
}

}  // namespace

int run_command_line(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << usage();
    return 2;
  }
  const std::string command = args.front();
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << usage();
    return 0;
  }
  if (command == "--version") {
    const BlasInfo blas = detect_blas();
    std::cout << "diffuse " << DIFFUSE_VERSION << " (LibTorch " << compat::torch_version()
              << (compat::cuda_available() ? ", CUDA available" : ", CPU only") << ", BLAS "
              << (blas.library.empty() ? "bundled with LibTorch" : blas.library)
              << (blas.reference ? " (reference, slow)" : "") << ")\n";
    return 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (const Command* entry = find_by_name(commands(), command)) return entry->run(rest);
    std::cerr << "error: unknown command '" << command << "'\n" << usage();
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "error: " << e.what() << "\nRun 'diffuse " << command << " --help' for usage.\n";
    return 2;
  } catch (const std::exception& e) {
    // One line: collapse LibTorch's multi-line messages.
    std::string message = e.what();
    for (auto& ch : message)
      if (ch == '\n') ch = ' ';
    std::cerr << "error: " << message << "\n";
    return 1;
  }
}

}  // namespace diffuse::cli
