#include "diffuse/schedule/diffusion_options.h"

namespace diffuse {

void apply_schedule_defaults(DiffusionOptions& o) {
  switch (o.schedule) {
    case ScheduleKind::vp_linear:
    case ScheduleKind::vp_cosine:
      break;
    case ScheduleKind::edm:  // Karras et al. 2022: EDM preconditioning, weighting, log-normal σ
      o.prediction = Prediction::edm;
      o.weighting = LossWeighting::edm;
      o.sigma_distribution = SigmaDistribution::log_normal;
      break;
    case ScheduleKind::ve:  // Song et al. 2021 (NCSN++ CIFAR-10, data in [-1, 1] doubles σ_max 50)
      o.sigma_min = 0.01;
      o.sigma_max = 50.0;
      o.sigma_distribution = SigmaDistribution::log_uniform;
      break;
    case ScheduleKind::flow:  // rectified flow: velocity, t ∈ [0.001, 0.999], uniform t
      o.prediction = Prediction::flow;
      o.sigma_min = 1e-3;
      o.sigma_max = 999.0;
      o.sigma_distribution = SigmaDistribution::uniform_t;
      o.p_mean = 0.0;  // SD3's logit-normal(0, 1) when sigma_distribution is log_normal
      o.p_std = 1.0;
      break;
  }
}

namespace {

constexpr int64_t kMaxTimesteps = 100'000;

// The per-schedule defaults, for the reference.
std::vector<std::pair<std::string, DiffusionOptions>> schedule_variants() {
  std::vector<std::pair<std::string, DiffusionOptions>> variants;
  for (const auto& entry : kScheduleKindNames) {
    DiffusionOptions o;
    o.schedule = entry.value;
    apply_schedule_defaults(o);
    variants.emplace_back(entry.name, o);
  }
  return variants;
}

void add_vp_grid(OptionSchema<DiffusionOptions>& s) {
  using O = DiffusionOptions;
  s.field("timesteps", &O::timesteps, "T of VP schedules",
          checks::int_range<int>(2, kMaxTimesteps));
  s.field("beta_start", &O::beta_start, "vp_linear: first β", checks::range(1e-12, 0.999));
  s.field("beta_end", &O::beta_end, "vp_linear: last β",
          checks::by_rule<double>("[beta_start, 0.999]"));
  s.field("cosine_s", &O::cosine_s, "vp_cosine: offset s", checks::range(0.0, 1.0));
  s.field("max_beta", &O::max_beta, "vp_cosine: β clip", checks::range(1e-6, 0.9999));
}

void add_sigma_range(OptionSchema<DiffusionOptions>& s) {
  using O = DiffusionOptions;
  s.field("sigma_min", &O::sigma_min,
          "smallest σ of edm, ve and flow (flow: t from sigma_min/(1+sigma_min))",
          checks::positive(1e3));
  s.field("sigma_max", &O::sigma_max, "largest σ of edm, ve and flow",
          checks::by_rule<double>("(sigma_min, 1e6]"));
  s.field("sigma_data", &O::sigma_data, "σ_data of the EDM preconditioning", checks::positive(1e3));
  s.field("shift", &O::shift, "flow only: SD3's resolution shift, σ → shift·σ (t → s t/(1+(s-1)t))",
          checks::positive(1e3));
}

void add_training_draw(OptionSchema<DiffusionOptions>& s) {
  using O = DiffusionOptions;
  s.choice("prediction", &O::prediction, kPredictionNames,
           "what the network predicts: ε, v, x0, EDM's F (edm) or the velocity v = ε - x0 (flow)");
  s.choice(
      "sigma_distribution", &O::sigma_distribution, kSigmaDistributionNames,
      "training σ: grid (uniform VP timesteps), log_normal (ln σ ~ N(p_mean, p_std²); for flow "
      "SD3's "
      "logit-normal t), log_uniform (ln σ uniform on [σ_min, σ_max]), uniform_t (flow t uniform)");
  s.choice("weighting", &O::weighting, kLossWeightingNames, "loss weighting over σ");
  s.field("min_snr_gamma", &O::min_snr_gamma, "γ of min-SNR weighting", checks::positive(1e6));
  s.field("p_mean", &O::p_mean, "log-normal training σ: mean of ln σ", checks::range(-20.0, 20.0));
  s.field("p_std", &O::p_std, "log-normal training σ: std of ln σ", checks::positive(20.0));
  s.field("p_uncond", &O::p_uncond,
          "label dropout to the null class (for classifier-free guidance)",
          checks::range(0.0, 1.0));
  s.field("vlb_weight", &O::vlb_weight,
          "λ of the hybrid loss L_simple + λ L_vlb with `model.learn_sigma`",
          checks::range(0.0, 1e6));
}

void check_diffusion(const DiffusionOptions& o, const OptionFail& fail) {
  checks::check_value(fail, "beta_end", checks::range(o.beta_start, 0.999).problem(o.beta_end));
  if (!(o.sigma_max > o.sigma_min && o.sigma_max <= 1e6))
    fail("sigma_max", "must lie in (sigma_min = " + format_double(o.sigma_min) + ", 1e6], found " +
                          format_double(o.sigma_max));
  if (o.shift != 1.0 && o.schedule != ScheduleKind::flow)
    fail("shift", "applies to schedule 'flow' only (SD3's resolution shift of t)");
  if (o.sigma_distribution == SigmaDistribution::grid && !is_vp_schedule(o.schedule))
    fail("sigma_distribution", "'grid' draws the timesteps of a VP schedule; schedule '" +
                                   std::string(enum_name(o.schedule, kScheduleKindNames)) +
                                   "' has none (use log_normal or log_uniform)");
  if (o.sigma_distribution == SigmaDistribution::uniform_t && o.schedule != ScheduleKind::flow)
    fail("sigma_distribution", "'uniform_t' draws the flow time t; it needs schedule 'flow'");
}

OptionSchema<DiffusionOptions> make_schema() {
  OptionSchema<DiffusionOptions> s;
  s.choice("schedule", &DiffusionOptions::schedule, kScheduleKindNames,
           "vp_linear, vp_cosine, edm, ve (σ geometric σ_min..σ_max) or flow (x_t = (1-t) x0 + t "
           "ε, σ = t/(1-t)); "
           "each sets its own defaults for the keys below")
      .after_read([](ConfigNode&, DiffusionOptions& o) { apply_schedule_defaults(o); });
  add_vp_grid(s);
  add_sigma_range(s);
  add_training_draw(s);
  s.rule(check_diffusion);
  s.default_variants("schedule", schedule_variants());
  return s;
}

}  // namespace

const OptionSchema<DiffusionOptions>& diffusion_options_schema() {
  return built_once<make_schema>();
}

}  // namespace diffuse
