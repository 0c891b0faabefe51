// diffuse plot: pictures of a run's curves (loss, learning rate, FD, accuracies) from the
// metrics.jsonl that training appends to, so that a run can be looked at while it trains.
#include <spdlog/spdlog.h>

#include <filesystem>

#include "args.h"
#include "diffuse/eval/run_curves.h"
#include "diffuse/io/image_io.h"

namespace diffuse::cli {

int run_plot(const std::vector<std::string>& argv) {
  Args args(
      "plot",
      "Draw the curves of a training run from RUN_DIR/metrics.jsonl: loss (log scale) and\n"
      "learning rate against step, and FD, class accuracy, train and test accuracy (by sigma)\n"
      "where the run logged them. A run still writing its last line is read up to it.",
      {
          {"--run", "RUN_DIR", "run folder written by diffuse train (holds metrics.jsonl)"},
          {"--out", "FILE", "image to write (default RUN_DIR/curves.png; .ppm without OpenCV)"},
      });
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  const std::string run_dir = args.require("--run");
  const std::string out = args.get(
      "--out", (std::filesystem::path(run_dir) / ("curves" + image_extension(3))).string());
  write_run_curves(run_dir, out);
  spdlog::info("wrote the curves of {} to {}", run_dir, out);
  return 0;
}

}  // namespace diffuse::cli
