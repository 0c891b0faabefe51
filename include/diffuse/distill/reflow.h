#pragma once
// Reflow (Liu et al. 2023, "Flow straight and fast", §2.2-2.3): draw (noise, sample)
// couplings by solving a flow model's ODE, so that a flow model trained on them (data.type:
// couplings) has straighter paths and samples in fewer Euler steps; and the straightness
// S(v) = ∫_0^1 E‖(x_1 − x_0) − v(x_t, t)‖² dt that tells how far from straight a model's
// paths are. `diffuse reflow` runs both around one training run.
#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "diffuse/config/experiment_config.h"
#include "diffuse/precond/precond.h"
#include "diffuse/sampling/generate.h"
#include "diffuse/train/trainer.h"

namespace diffuse {

struct CouplingOptions {
  // sampler (an ODE sampler, so that the sample is a function of its noise), steps, cfg,
  // spacing, batch_size, bf16 and sampler options; seeds and labels are set per chunk.
  GenerateOptions generate;
  int64_t pairs = 0;          // couplings wanted in the folder
  int64_t chunk_size = 1000;  // couplings per file: the unit that a stopped run keeps
  uint64_t first_seed = 0;    // pair i uses seed first_seed + i and class i mod classes
  std::string teacher;        // the teacher's checkpoint path, recorded in the manifest
};

// Makes `dir` hold options.pairs couplings of `teacher`: couplings.json (the manifest) and
// pairs_NNNNNN.pt files, each written atomically. Files already there from the same settings
// are kept (a stopped run continues where it stopped; a larger `pairs` extends the set);
// different settings are refused with a ConfigError naming the setting. `progress` gets
// (pairs done, pairs wanted). Returns the number of pairs drawn by this call.
int64_t write_couplings(Precond& teacher, const std::vector<std::string>& class_names,
                        const CouplingOptions& options, const std::string& dir,
                        const std::function<void(int64_t done, int64_t total)>& progress = {});

// Straightness of a flow model's own paths, from Euler on its ODE in the interpolant's
// coordinates x_t = x̃/(1+σ), t = σ/(1+σ) (Liu et al. 2023 §2.3): with v_k the velocity
// (x_t − D)/t at grid time t_k and x_1 − x_0 taken as the chord (x_{t_0} − x_end)/t_0,
//   S ≈ Σ_k Δt_k ‖(x_1 − x_0) − v_k‖² / t_0,
// per pixel (mean over pixels and samples). S = 0 exactly when every path is a straight line,
// which one Euler step then follows without error.
struct StraightnessReport {
  double straightness = 0.0;
  std::vector<double> t;          // t_k of each Euler step
  std::vector<double> deviation;  // ‖(x_1 − x_0) − v_k‖² per pixel at t_k: the curvature profile
  // RMS per pixel between the one-step Euler sample x_{t_0} − t_0 v_0 and the path's end:
  // what sampling in one step costs.
  double one_step_gap = 0.0;
  int64_t samples = 0;
  int steps = 0;
};

// Measures `model` (a flow-matching checkpoint: diffusion.schedule flow) on the seeds and
// labels of `options` with options.steps Euler steps on the linear-t grid and options.cfg.
StraightnessReport measure_straightness(Precond& model, const GenerateOptions& options);

// The report as one JSON object (keys as the struct's fields).
std::string straightness_json(const StraightnessReport& report);

// One reflow round, as `diffuse reflow` runs it: couplings of the teacher in OUT/pairs, the
// teacher's straightness, a flow model trained on the couplings from the teacher's weights
// in OUT/train, and its straightness; OUT/reflow.json and OUT/straightness.png sum it up. Each
// stage continues where a stopped run left it (couplings kept, training resumed from
// OUT/train/ckpt/last.pt). The result's checkpoint is the teacher of the next round
// (k-rectified flow).
struct ReflowOptions {
  std::string teacher;         // a flow-matching checkpoint (diffusion.schedule flow)
  std::string out_dir;
  CouplingOptions couplings;   // couplings.teacher is set from `teacher`
  // The training run: its data section becomes the couplings, run_dir OUT/train and
  // train.init_from the teacher; the model and diffusion sections must fit the teacher's weights.
  ExperimentConfig train;
  // Straightness measure: seeds first_seed.. (disjoint from the couplings'), Euler steps.
  int64_t measure_samples = 256;
  uint64_t measure_first_seed = 1'000'000'000;
  int measure_steps = 20;
  torch::Device device = torch::kCPU;
  const std::atomic<bool>* stop_requested = nullptr;
  std::function<void(int64_t done, int64_t total)> progress;  // couplings drawn
};

struct ReflowResult {
  int64_t pairs_drawn = 0;     // by this call (0 when all were there)
  StraightnessReport before;   // the teacher
  StraightnessReport after;    // the trained model (empty when training was interrupted)
  TrainResult training;
};

ReflowResult reflow(const ReflowOptions& options);

}  // namespace diffuse
