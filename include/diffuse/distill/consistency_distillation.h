#pragma once
// Consistency distillation (Song et al. 2023, "Consistency models", Algorithm 2): a student
// f_θ with the boundary condition built in (consistency_output in precond.h) is trained so
// that f_θ(x_{n+1}, σ_{n+1}) matches the EMA target f_θ⁻(x̂_n, σ_n), where x̂_n is one step
// of the teacher's probability-flow ODE from x_{n+1} = x0 + σ_{n+1} z down to σ_n.
#include <torch/torch.h>

#include <optional>
#include <vector>

#include "diffuse/config/experiment_config.h"
#include "diffuse/losses/dsm_loss.h"
#include "diffuse/precond/precond.h"

namespace diffuse {

// The boundary σ_min of a config's model: the schedule's σ_min for distill.method consistency,
// none otherwise (an ordinary denoiser).
std::optional<double> consistency_boundary(const ExperimentConfig& config);

// The N discretisation points σ_1 = σ_min < ... < σ_N = σ_max, increasing: for a flow
// schedule uniform in t = σ/(1+σ) (its sampling grid), otherwise Karras et al. 2022 eq. 5 with
// ρ = 7 (Song et al. 2023 §3, following EDM).
std::vector<double> consistency_sigmas(const NoiseSchedule& schedule, int n);

// N(k) = ⌈√(k/K (n_end² − n_start²) + n_start²) − 1⌉ + 1 at step k of K (Song et al. 2023
// App. C, with s0 = n_start and s1 + 1 = n_end), and the target decay
// μ(k) = exp(n_start ln μ0 / N(k)).
int consistency_points_at(const DistillOptions& options, int64_t step, int64_t total_steps);
double consistency_target_decay(const DistillOptions& options, int points);

// d(a, b) per sample [B]: l2 is the mean squared difference; pseudo_huber is
// √(‖a − b‖² + c²) − c with c = 0.00054 √d, d the dimension of a sample (Song & Dhariwal
// 2023, "Improved techniques for training consistency models", §3.3).
torch::Tensor consistency_distance(ConsistencyDistance distance, const torch::Tensor& a, const torch::Tensor& b);

class ConsistencyDistillation {
 public:
  // `teacher`: the teacher's model in eval mode on the training device. Throws ConfigError
  // when its guidance cannot apply (cfg ≠ 1 without a null class).
  ConsistencyDistillation(DistillOptions options, Precond teacher, int64_t total_steps);

  // One loss evaluation of Algorithm 2 for the batch x0 (labels [B] after dropout, or
  // undefined): n ~ U{1, ..., N(k) − 1} per sample and z ~ N(0, I), both from `gen`;
  // λ(σ_n) = 1. `student` carries the gradient; `target` and the teacher run without.
  LossOutput loss(Precond& student, Precond& target, const torch::Tensor& x0, const torch::Tensor& labels,
                  torch::Generator& gen, int64_t step);
  // μ(k) for the target update after optimizer step `step`.
  double target_decay(int64_t step) const;

 private:
  // One step of the teacher's ODE dx/dσ = (x − D)/σ from σ (per sample) down to σ_next.
  torch::Tensor teacher_step(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& sigma_next,
                             const torch::Tensor& labels);

  DistillOptions options_;
  Precond teacher_;
  int64_t total_steps_;
};

}  // namespace diffuse
