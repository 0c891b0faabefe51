// diffuse: train diffusion models, sample from them, restore degraded images, plot runs.
#include <spdlog/spdlog.h>

#include <iostream>
#include <string>
#include <vector>

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
    "  train     train a diffusion model from a YAML config\n"
    "  sample    generate images from a checkpoint\n"
    "  restore   solve an inverse problem (inpainting, deblurring, super-resolution) with DPS\n"
    "  eval      FD, KID, precision/recall and class accuracy of generated images\n"
    "  info      summarise a dataset (--config) or a checkpoint (--checkpoint)\n"
    "  plot      draw a run's loss and metric curves (RUN_DIR/curves.png)\n"
    "\n"
    "Run 'diffuse <command> --help' for the flags of a command.\n"
    "  diffuse --version   print the version\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
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
    const diffuse::BlasInfo blas = diffuse::detect_blas();
    std::cout << "diffuse " << DIFFUSE_VERSION << " (LibTorch " << diffuse::compat::torch_version()
              << (diffuse::compat::cuda_available() ? ", CUDA available" : ", CPU only") << ", BLAS "
              << (blas.library.empty() ? "bundled with LibTorch" : blas.library)
              << (blas.reference ? " (reference, slow)" : "") << ")\n";
    return 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (command == "train") return diffuse::cli::run_train(rest);
    if (command == "sample") return diffuse::cli::run_sample(rest);
    if (command == "restore") return diffuse::cli::run_restore(rest);
    if (command == "info") return diffuse::cli::run_info(rest);
    if (command == "eval") return diffuse::cli::run_eval(rest);
    if (command == "plot") return diffuse::cli::run_plot(rest);
    std::cerr << "error: unknown command '" << command << "'\n" << kUsage;
    return 2;
  } catch (const diffuse::UsageError& e) {
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
