#include <spdlog/spdlog.h>

#include "args.h"
#include "diffuse/core/blas_info.h"
#include "diffuse/core/device.h"
#include "diffuse/core/error.h"
#include "diffuse/distill/reflow.h"
#include "diffuse/sampling/generation_policy.h"
#include "diffuse/sampling/sampler.h"

namespace diffuse::cli {
namespace {

// The teacher's ODE solve that draws the couplings.
GenerateOptions coupling_generate_options(const Args& args, const ExperimentConfig& train) {
  GenerateOptions g;
  g.sampler = args.get("--sampler", "dpmpp2m");
  if (!find_sampler(g.sampler).ode)
    throw UsageError("--sampler " + g.sampler + " is stochastic; couplings need an ODE solver (euler, heun, dpmpp2m, ddim)");
  g.steps = static_cast<int>(args.get_int("--steps", 20, 1, 10000));
  g.spacing = TimestepSpacing::linear_t;
  g.cfg = args.get_double("--cfg", 1.0, 0.0, 100.0);
  g.batch_size = args.get_int("--batch-size", 64, 1, 65536);
  g.sampler_options.clip_denoised = default_clip_denoised(train.data);
  return g;
}

}  // namespace

int run_reflow(const std::vector<std::string>& argv) {
  auto flags = std::vector<FlagSpec>{
      {"--checkpoint", "CKPT", "the teacher: a flow-matching checkpoint (diffusion.schedule flow)"},
      {"--pairs", "N", "(noise, sample) couplings to draw, 1-100000000"},
      {"--out", "DIR", "output folder: pairs/, train/, straightness_*.json, straightness.png, reflow.json"},
      {"--config", "FILE", "training config of the reflowed model (its data section, run_dir and train.init_from are replaced)"},
      {"--set", "KEY=VALUE", "override a key of --config, e.g. train.steps=1000", true},
      {"--sampler", "NAME", "the teacher's ODE solver: euler, heun, dpmpp2m or ddim (default dpmpp2m)"},
      {"--steps", "N", "solver steps per coupling, 1-10000 (default 20)"},
      {"--cfg", "W", "classifier-free guidance of the teacher, in [0, 100] (default 1)"},
      {"--batch-size", "B", "couplings per network batch, 1-65536 (default 64)"},
      {"--chunk", "N", "couplings per file, the unit a stopped run keeps, 1-1000000 (default 1000)"},
      {"--first-seed", "S", "coupling i uses seed S + i (default 0)"},
      {"--measure", "N", "samples of the straightness measure, 1-100000 (default 256)"},
      {"--measure-steps", "N", "Euler steps of the straightness measure, 1-10000 (default 20)"},
      thread_flag(),
  };
  Args args("reflow",
            "One round of rectified flow (Liu et al. 2023): solve the teacher's ODE from N noise draws, keep the\n"
            "(noise, sample) couplings, retrain a flow model on them from the teacher's weights and report the\n"
            "straightness of both. Each stage resumes where a stopped run left it. The result,\n"
            "OUT/train/ckpt/last.pt, is the teacher of the next round.",
            flags);
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  ReflowOptions o;
  o.teacher = args.require("--checkpoint");
  o.out_dir = args.require("--out");
  auto overrides = args.all("--set");
  if (args.has("--device")) overrides.push_back("train.device=" + args.get("--device"));
  o.train = load_experiment_config(args.require("--config"), overrides);
  apply_thread_flag(args, o.train.train.num_threads);
  auto& c = o.couplings;
  c.pairs = args.get_int("--pairs", 0, 1, 100'000'000);
  if (!args.has("--pairs")) throw UsageError("--pairs is required");
  c.chunk_size = args.get_int("--chunk", 1000, 1, 1'000'000);
  c.first_seed = static_cast<uint64_t>(args.get_int("--first-seed", 0, 0, 1'000'000'000'000));
  c.generate = coupling_generate_options(args, o.train);
  o.measure_samples = args.get_int("--measure", 256, 1, 100000);
  o.measure_steps = static_cast<int>(args.get_int("--measure-steps", 20, 1, 10000));
  o.device = resolve_device(o.train.train.device, "train.device");
  if (o.device.is_cpu()) warn_if_reference_blas();
  c.generate.bf16 = o.device.is_cuda() && o.train.train.precision == Precision::bf16;
  o.stop_requested = &stop_on_signals();
  o.progress = decile_progress("couplings", "pairs");

  const ReflowResult result = reflow(o);
  if (result.training.interrupted) {
    spdlog::warn("interrupted; run the same command again to continue");
    return 130;
  }
  spdlog::info("straightness {:.4g} → {:.4g} per pixel, one-step gap {:.4g} → {:.4g}; next round: --checkpoint {}",
               result.before.straightness, result.after.straightness, result.before.one_step_gap,
               result.after.one_step_gap, result.training.last_checkpoint);
  return 0;
}

}  // namespace diffuse::cli
