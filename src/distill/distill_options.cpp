#include "diffuse/distill/distill_options.h"

namespace diffuse {

namespace {

OptionSchema<DistillOptions> make_schema() {
  using O = DistillOptions;
  OptionSchema<O> s;
  s.choice("method", &O::method, kDistillMethodNames,
           "consistency: consistency distillation from the `teacher` checkpoint (see `diffuse "
           "train`); the section "
           "is left out of emitted configs when unused");
  s.field("teacher", &O::teacher, "the teacher's checkpoint (required with a method)");
  s.choice("solver", &O::solver, kTeacherSolverNames, "the teacher's ODE step σ_{n+1} → σ_n");
  s.field("teacher_cfg", &O::teacher_cfg, "the teacher's guidance weight",
          checks::range(0.0, 100.0));
  s.choice("distance", &O::distance, kConsistencyDistanceNames,
           "l2 (mean squared difference) or pseudo_huber (√(‖a − b‖² + c²) − c, c = 0.00054 √d)");
  s.field("n_start", &O::n_start, "discretisation points N(k) at the first step",
          checks::int_range<int>(2, 100000));
  s.field("n_end", &O::n_end, "N(k) at the last step", checks::by_rule<int>("[n_start, 100000]"));
  s.field("mu0", &O::mu0, "μ0 of the target decay μ(k) = exp(n_start ln μ0 / N(k))",
          checks::range(0.0, 1.0));
  s.rule([](const O& o, const OptionFail& fail) {
    if (o.method != DistillMethod::none && o.teacher.empty())
      fail("teacher", "distill.method " + std::string(enum_name(o.method, kDistillMethodNames)) +
                          " needs the teacher's checkpoint");
    checks::check_value(fail, "n_end", checks::int_range<int>(o.n_start, 100000).problem(o.n_end));
  });
  return s;
}

}  // namespace

const OptionSchema<DistillOptions>& distill_options_schema() { return built_once<make_schema>(); }

}  // namespace diffuse
