#pragma once
// The distill: section of an experiment config. Consistency distillation (Song et al. 2023,
// Algorithm 2): the student starts from the teacher's weights and learns f(x, σ) with
// f(x, σ_min) = x built in; the run's EMA network is the target θ⁻, updated with μ(k) instead
// of train.ema_decay. Keys are described once, by distill_options_schema().
#include <array>
#include <string>

#include "diffuse/core/option_schema.h"

namespace diffuse {

enum class DistillMethod { none, consistency };
inline constexpr std::array<EnumName<DistillMethod>, 2> kDistillMethodNames{{
    {"none", DistillMethod::none},
    {"consistency", DistillMethod::consistency},
}};

enum class TeacherSolver { euler, heun };
inline constexpr std::array<EnumName<TeacherSolver>, 2> kTeacherSolverNames{{
    {"euler", TeacherSolver::euler},
    {"heun", TeacherSolver::heun},
}};

enum class ConsistencyDistance { l2, pseudo_huber };
inline constexpr std::array<EnumName<ConsistencyDistance>, 2> kConsistencyDistanceNames{{
    {"l2", ConsistencyDistance::l2},
    {"pseudo_huber", ConsistencyDistance::pseudo_huber},
}};

struct DistillOptions {
  DistillMethod method = DistillMethod::none;
  std::string teacher;  // checkpoint of the teacher (required with a method)
  TeacherSolver solver = TeacherSolver::heun;
  double teacher_cfg = 1.0;
  ConsistencyDistance distance = ConsistencyDistance::pseudo_huber;
  // N(k), the number of discretisation points, grows from n_start at the first step to n_end at
  // the last (Song et al. 2023 App. C with s0 = n_start, s1 + 1 = n_end); equal: fixed N.
  int n_start = 18;
  int n_end = 18;
  double mu0 = 0.95;  // target decay μ(k) = exp(n_start ln μ0 / N(k))
};

const OptionSchema<DistillOptions>& distill_options_schema();

}  // namespace diffuse
