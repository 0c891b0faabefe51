#pragma once
// Denoising score matching (DESIGN §3): one loss for every prediction type. F is regressed
// onto its own target (x0 − c_skip x)/c_out, so ε-, v- and x0-MSE are recovered exactly;
// the weighting is expressed in x0-space and converted with c_out².
#include <torch/torch.h>

#include "diffuse/precond/precond.h"
#include "diffuse/schedule/diffusion_options.h"

namespace diffuse {

// Per-sample weight on ‖F − target‖² for σ [B] (float32).
// uniform: 1 (the type's own MSE); min_snr: min(SNR, γ)·c_out² with SNR = 1/σ²
// (Hang et al. 2023, eq. 8: ε → min(SNR,γ)/SNR, v → min(SNR,γ)/(SNR+1));
// edm: λ(σ)·c_out² with λ = (σ²+σ_d²)/(σ σ_d)² (Karras et al. 2022 eq. 8, = 1 for EDM precond).
torch::Tensor loss_weight(LossWeighting weighting, const torch::Tensor& sigma,
                          const torch::Tensor& c_out, const DiffusionOptions& options);

// The random inputs of one loss evaluation. They are drawn on the CPU from the trainer's
// generator, so CPU and CUDA runs draw the same numbers and a resumed run continues the
// stream, and reach the device through copy_to_device (no host synchronisation).
struct TrainingDraw {
  torch::Tensor sigma;      // [B] float32
  torch::Tensor timesteps;  // [B] int64 for VP schedules, else undefined
  torch::Tensor labels;     // [B] int64 after label dropout, or undefined (unconditional)
  torch::Tensor noise;      // like x0, float32
};

// Which rows of a global batch a process holds in data-parallel training: rows
// [offset, offset + B) of `global` (0: the batch is the whole batch).
struct BatchShard {
  int64_t offset = 0;
  int64_t global = 0;
};

// The distribution of a loss evaluation's random inputs (TrainingDraw): training noise
// levels σ, label dropout and noise, all from one generator (so that a resumed run continues
// the same random stream). Not a sampler in the sampling/ sense: it generates no images.
class TrainingDrawDistribution {
 public:
  TrainingDrawDistribution(const DiffusionOptions& options, const NoiseSchedule& schedule);

  // σ [B] (float32, on `device`) by diffusion.sigma_distribution, then times the flow shift:
  //   grid        t uniform in {0..T-1} of the VP grid, σ_t (and `timesteps`; Ho et al. 2020);
  //   log_normal  ln σ ~ N(p_mean, p_std²) (Karras et al. 2022 §5). For flow this is SD3's
  //               logit-normal t (Esser et al. 2024 eq. 19), since ln σ = ln(t/(1-t)) = logit t;
  //   log_uniform ln σ uniform on [ln σ_min, ln σ_max] (the VE SDE's σ(t) = σ_min (σ_max/σ_min)^t
  //               at uniform t, Song et al. 2021 eq. 30; NCSN's geometric levels, continuous);
  //   uniform_t   t uniform on [t(σ_min), t(σ_max)], σ = t/(1-t) (rectified flow, Liu et al. 2023).
  torch::Tensor sample_sigma(int64_t batch, torch::Generator& gen, torch::Device device,
                             torch::Tensor* timesteps = nullptr) const;
  // Replaces each label by `null_label` with probability p_uncond (drawn for the whole
  // global batch of `shard`, as draw() does).
  torch::Tensor drop_labels(const torch::Tensor& labels, int64_t null_label,
                            torch::Generator& gen, const BatchShard& shard = {}) const;
  // σ, then label dropout, then noise of x0's shape, in that order, on x0's device. With a
  // shard, every rank draws them for the whole global batch from the same generator and keeps
  // its rows, so that N ranks draw what one process would for the global batch, and the
  // generators of all ranks stay equal (one saved state resumes them all).
  TrainingDraw draw(const torch::Tensor& x0, const torch::Tensor& labels, int64_t null_label,
                    torch::Generator& gen, const BatchShard& shard = {}) const;

 private:
  DiffusionOptions options_;
  torch::Tensor grid_sigmas_;  // VP σ_t, CPU float32 (distribution grid)
};

struct LossOutput {
  torch::Tensor loss;        // scalar
  torch::Tensor per_sample;  // [B] weighted DSM term (detached)
};

// One training loss evaluation on given random inputs. With a learned-variance model, adds
// vlb_weight · L_vlb (Nichol & Dhariwal 2021 §3.1). Free of host synchronisation, so that it
// can run inside a captured CUDA graph.
LossOutput dsm_loss(Precond& precond, const torch::Tensor& x0, const TrainingDraw& draw,
                    const DiffusionOptions& options);

// The same with the random inputs drawn from `gen` (labels: [B] or undefined).
LossOutput dsm_loss(Precond& precond, const torch::Tensor& x0, const torch::Tensor& labels,
                    const TrainingDrawDistribution& draws, const DiffusionOptions& options,
                    torch::Generator& gen);

}  // namespace diffuse
