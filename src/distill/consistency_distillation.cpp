#include "diffuse/distill/consistency_distillation.h"

#include <algorithm>
#include <cmath>

#include "diffuse/core/device_copy.h"
#include "diffuse/core/error.h"
#include "diffuse/schedule/sigma_spacing.h"

namespace diffuse {

std::optional<double> consistency_boundary(const ExperimentConfig& config) {
  if (config.distill.method != DistillMethod::consistency) return std::nullopt;
  return NoiseSchedule::from_options(config.diffusion).sigma_min();
}

std::vector<double> consistency_sigmas(const NoiseSchedule& schedule, int n) {
  if (n < 2) throw ConfigError("consistency distillation needs at least 2 discretisation points, found " +
                               std::to_string(n));
  std::vector<double> sigmas;
  if (schedule.kind() == ScheduleKind::flow) {
    const double shift = schedule.shift();
    const double lo = NoiseSchedule::flow_t_from_sigma(schedule.sigma_min() / shift);
    const double hi = NoiseSchedule::flow_t_from_sigma(schedule.sigma_max() / shift);
    for (int i = 0; i < n; ++i)
      sigmas.push_back(shift * NoiseSchedule::sigma_from_flow_t(lo + (hi - lo) * i / (n - 1)));
  } else {
    sigmas = karras_sigmas(n, schedule.sigma_min(), schedule.sigma_max());
    sigmas.pop_back();  // the final 0 of a sampling list
    std::reverse(sigmas.begin(), sigmas.end());
  }
  // The ends exactly, so that f(x, σ_1) = x holds to the last bit.
  sigmas.front() = schedule.sigma_min();
  sigmas.back() = schedule.sigma_max();
  return sigmas;
}

int consistency_points_at(const DistillOptions& o, int64_t step, int64_t total_steps) {
  const double frac = total_steps > 0 ? std::clamp(static_cast<double>(step) / total_steps, 0.0, 1.0) : 1.0;
  const double s0 = o.n_start, s1 = o.n_end;
  const double n = std::ceil(std::sqrt(frac * (s1 * s1 - s0 * s0) + s0 * s0) - 1.0) + 1.0;
  return std::clamp(static_cast<int>(n), o.n_start, o.n_end);
}

double consistency_target_decay(const DistillOptions& o, int points) {
  if (o.mu0 <= 0.0) return 0.0;
  return std::exp(o.n_start * std::log(o.mu0) / points);
}

torch::Tensor consistency_distance(ConsistencyDistance distance, const torch::Tensor& a, const torch::Tensor& b) {
  const auto diff = (a.to(torch::kFloat32) - b.to(torch::kFloat32)).flatten(1);
  switch (distance) {
    case ConsistencyDistance::l2: return diff.square().mean(1);
    case ConsistencyDistance::pseudo_huber: {
      const double c = 0.00054 * std::sqrt(static_cast<double>(diff.size(1)));
      return (diff.square().sum(1) + c * c).sqrt() - c;
    }
  }
  throw std::logic_error("consistency_distance: unhandled distance");
}

ConsistencyDistillation::ConsistencyDistillation(DistillOptions options, Precond teacher, int64_t total_steps)
    : options_(std::move(options)), teacher_(std::move(teacher)), total_steps_(total_steps) {
  if (options_.teacher_cfg != 1.0 && teacher_->net().null_label() < 0)
    throw ConfigError("distill.teacher_cfg " + format_double(options_.teacher_cfg) +
                      ": the teacher is unconditional, so guidance cannot apply (set it to 1)");
}

double ConsistencyDistillation::target_decay(int64_t step) const {
  return consistency_target_decay(options_, consistency_points_at(options_, step, total_steps_));
}

torch::Tensor ConsistencyDistillation::teacher_step(const torch::Tensor& x, const torch::Tensor& sigma,
                                                    const torch::Tensor& sigma_next, const torch::Tensor& labels) {
  // Guidance 1 (or no labels) gives the plain denoiser.
  const Denoiser denoise = make_model_denoiser(teacher_, labels, labels.defined() ? options_.teacher_cfg : 1.0);
  const auto s = sigma.view({-1, 1, 1, 1});
  const auto s_next = sigma_next.view({-1, 1, 1, 1});
  const auto d = (x - denoise(x, sigma)) / s;  // Karras et al. 2022 eq. 3
  const auto x_euler = x + (s_next - s) * d;
  if (options_.solver == TeacherSolver::euler) return x_euler;
  // Heun's correction (Karras et al. 2022 Algorithm 1); σ_n ≥ σ_min > 0, so it always applies.
  const auto d_next = (x_euler - denoise(x_euler, sigma_next)) / s_next;
  return x + (s_next - s) * 0.5 * (d + d_next);
}

LossOutput ConsistencyDistillation::loss(Precond& student, Precond& target, const torch::Tensor& x0,
                                         const torch::Tensor& labels, torch::Generator& gen, int64_t step) {
  const int points = consistency_points_at(options_, step, total_steps_);
  const auto grid = torch::tensor(consistency_sigmas(student->schedule(), points), torch::kFloat64).to(torch::kFloat32);
  const int64_t batch = x0.size(0);
  const auto n = torch::randint(points - 1, {batch}, gen, torch::kLong);
  const auto z = copy_to_device(torch::randn(x0.sizes(), gen, torch::kFloat32), x0.device());
  const auto sigma_lo = copy_to_device(grid.index_select(0, n), x0.device());
  const auto sigma_hi = copy_to_device(grid.index_select(0, n + 1), x0.device());
  const auto x_hi = x0 + sigma_hi.view({-1, 1, 1, 1}) * z;
  torch::Tensor goal;
  {
    torch::NoGradGuard no_grad;
    const auto x_lo = teacher_step(x_hi, sigma_hi, sigma_lo, labels);
    goal = target->forward(x_lo, sigma_lo, labels).denoised;
  }
  const auto out = student->forward(x_hi, sigma_hi, labels).denoised;
  const auto per_sample = consistency_distance(options_.distance, out, goal);
  return LossOutput{per_sample.mean(), per_sample.detach()};
}

}  // namespace diffuse
