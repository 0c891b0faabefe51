#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "args.h"
#include "distributed_launch.h"
#include "diffuse/config/experiment_config.h"
#include "diffuse/core/blas_info.h"
#include "diffuse/core/device.h"
#include "diffuse/train/trainer.h"

namespace diffuse::cli {

int run_train(const std::vector<std::string>& argv) {
  Args args("train",
            "Train a diffusion model. Writes RUN_DIR/config.yaml, metrics.jsonl, samples/ and ckpt/.\n"
            "Ctrl-C finishes the current step, writes a checkpoint and exits; --resume continues it.",
            with_distributed_flags({
                {"--config", "FILE", "experiment YAML (configs/*.yaml)"},
                {"--set", "KEY=VALUE", "override a config key, e.g. train.steps=2000", true},
                {"--resume", "CKPT", "continue a run from its checkpoint (e.g. RUN_DIR/ckpt/last.pt)"},
                {"--overwrite", "", "start afresh in a run_dir that already holds a run (deletes its checkpoints, samples and metrics)"},
                {"--threads", "N", "CPU threads for LibTorch, 0-1024 (default: train.num_threads; 0 = every logical CPU)"},
            }));
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  if (args.has("--resume") && args.has("--overwrite"))
    throw UsageError("give --resume (continue the run) or --overwrite (start afresh), not both");
  if (const auto code = launch_local_workers_if_asked(args, "train", argv)) return *code;
  auto overrides = args.all("--set");
  if (args.has("--device")) overrides.push_back("train.device=" + args.get("--device"));
  ExperimentConfig config = load_experiment_config(args.require("--config"), overrides);
  apply_thread_flag(args, config.train.num_threads);
  const torch::Device device = resolve_device(config.train.device, "train.device");
  if (device.is_cpu()) warn_if_reference_blas();
  const auto communicator = join_ranks(args, device);

  TrainerOptions options;
  options.communicator = communicator.get();
  options.resume = args.get("--resume");
  options.overwrite = args.has("--overwrite");
  options.stop_requested = &stop_on_signals();
  const TrainResult result = train(config, options);
  spdlog::info("{} at step {}; last checkpoint {}", result.interrupted ? "interrupted" : "done",
               result.step, result.last_checkpoint);
  return result.interrupted ? 130 : 0;
}

}  // namespace diffuse::cli
