// `diffuse distill`: score distillation from a checkpoint (distill/score_distillation.h).
#include <spdlog/spdlog.h>

#include "args.h"
#include "diffuse/core/blas_info.h"
#include "diffuse/core/device.h"
#include "diffuse/core/error.h"
#include "diffuse/distill/score_distillation.h"

namespace diffuse::cli {

int run_distill(const std::vector<std::string>& argv) {
  Args args("distill",
            "Score distillation: optimise n particles of a generator (pixels, a 2-D neural field or a\n"
            "voxel volume seen from cameras on a circle) so that their renders look like the checkpoint's\n"
            "data, with SDS, VSD or SDI (configs/distill/*.yaml). Writes OUT/final.png, OUT/renders/,\n"
            "OUT/progress.png (renders over the iterations), OUT/metrics.jsonl and curves.png,\n"
            "OUT/distill.json, for volume OUT/turntable.png, and OUT/state.pt: the same command\n"
            "continues a stopped run.",
            {
                {"--checkpoint", "CKPT", "the prior: a checkpoint written by diffuse train"},
                {"--config", "FILE", "the distillation config (configs/distill/*.yaml)"},
                {"--set", "KEY=VALUE", "override a key of --config, e.g. steps=200 or class=3", true},
                {"--out", "DIR", "output folder (a run there with the same options is continued)"},
                {"--no-ema", "", "use the raw weights instead of the EMA weights"},
                thread_flag(),
            });
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  apply_thread_flag(args);
  DistillRunOptions o;
  o.checkpoint = args.require("--checkpoint");
  o.out_dir = args.require("--out");
  o.distill = load_score_distillation(args.require("--config"), args.all("--set"));
  o.use_ema = !args.has("--no-ema");
  o.device = resolve_device(args.get("--device", "auto"), "--device");
  if (o.device.is_cpu()) warn_if_reference_blas();
  o.stop_requested = &stop_on_signals();
  const DistillRunResult result = run_score_distillation(o);
  if (result.interrupted) {
    spdlog::warn("interrupted at step {}; run the same command again to continue", result.steps_done);
    return 130;
  }
  spdlog::info("{} steps in {:.1f} s; final renders: mean |x| {:.3f}, Laplacian variance {:.4g}; wrote {}",
               result.steps_done, result.seconds, result.statistics.mean_abs, result.statistics.laplacian_variance,
               o.out_dir);
  return 0;
}

}  // namespace diffuse::cli
