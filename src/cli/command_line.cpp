// The diffuse command line as a function: what `diffuse ARGS...` prints and returns, so that
// the binary's main is one call and the CLI tests can run a command without starting a
// process (test::run_diffuse_forked, tests/support/run_command.h).
#include "command_line.h"

#include <spdlog/spdlog.h>

#include <iostream>

#include "args.h"
#include "diffuse/core/blas_info.h"
#include "diffuse/core/compat.h"
#include "diffuse/core/error.h"
#include "diffuse/version.h"

namespace {

const char* kUsage =
    "usage: diffuse <command> [flags]\n"
    "\n"
    "commands:\n"
    "  train     train a diffusion model from a YAML config (also consistency distillation)\n"
    "  reflow    draw a flow model's (noise, sample) couplings and retrain on them (rectified flow)\n"
    "  sample    generate images from a checkpoint\n"
    "  restore   solve an inverse problem (inpainting, deblurring, super-resolution) with DPS\n"
    "  invert    DDIM inversion: images to their noise and back, with the round trip's PSNR\n"
    "  distill   optimise images, neural fields or voxel volumes with the model as prior (SDS, VSD, SDI)\n"
    "  export    write a checkpoint's weights and config as a safetensors file (for Python and sharing)\n"
    "  import    map weights trained elsewhere (the DiT repository's, diffusers' VAE) onto diffuse\n"
    "  encode    images to the latents of a VAE (for latent diffusion: data.type latents)\n"
    "  eval      FD, KID, precision/recall and class accuracy of generated images\n"
    "  info      summarise a dataset (--config) or a checkpoint (--checkpoint)\n"
    "  plot      draw a run's loss and metric curves (RUN_DIR/curves.png)\n"
    "  config    print the reference of every config and restore-task key (--reference)\n"
    "\n"
    "Run 'diffuse <command> --help' for the flags of a command.\n"
    "  diffuse --version   print the version\n";

}  // namespace

namespace diffuse::cli {

int run_command_line(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string command = args.front();
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
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
    if (command == "train") return run_train(rest);
    if (command == "sample") return run_sample(rest);
    if (command == "restore") return run_restore(rest);
    if (command == "invert") return run_invert(rest);
    if (command == "distill") return run_distill(rest);
    if (command == "export") return run_export(rest);
    if (command == "import") return run_import(rest);
    if (command == "encode") return run_encode(rest);
    if (command == "info") return run_info(rest);
    if (command == "eval") return run_eval(rest);
    if (command == "plot") return run_plot(rest);
    if (command == "reflow") return run_reflow(rest);
    if (command == "config") return run_config(rest);
    std::cerr << "error: unknown command '" << command << "'\n" << kUsage;
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
