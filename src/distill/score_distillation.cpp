#include "diffuse/distill/score_distillation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "diffuse/core/atomic_file.h"
#include "diffuse/core/error.h"
#include "diffuse/sampling/invert.h"

namespace diffuse {
namespace {

double weight_at(DistillWeighting weighting, double sigma) {
  // DreamFusion's w(t) = σ_t² of the VP process, whose σ_t² = σ²/(1 + σ²) in σ-space.
  return weighting == DistillWeighting::vp_variance ? sigma * sigma / (1 + sigma * sigma) : 1.0;
}

// σ(t) of each time in [n] float64 `times`.
std::vector<double> sigmas_at(const NoiseSchedule& schedule, const torch::Tensor& times) {
  std::vector<double> sigmas(static_cast<size_t>(times.size(0)));
  for (int64_t k = 0; k < times.size(0); ++k) sigmas[static_cast<size_t>(k)] = sigma_at_time(schedule, times[k].item<double>());
  return sigmas;
}

OptionSchema<VsdOptions> make_vsd_schema() {
  using O = VsdOptions;
  OptionSchema<O> s;
  s.choice(
      "network", &O::network, kParticleScoreNetworkNames,
      "the particle score model ε_φ: LoRA adapters on the prior's network, or a full copy of it");
  s.field("lora_rank", &O::lora_rank, "network lora: rank of each adapter",
          checks::int_range<int64_t>(1, 1024))
      .applies(
          only_for("network", &O::network, kParticleScoreNetworkNames, ParticleScoreNetwork::lora));
  s.field("lr", &O::lr, "Adam learning rate of φ", checks::range(1e-12, 10.0));
  s.field("updates", &O::updates, "φ updates per particle update", checks::int_range<int>(1, 100));
  return s;
}

OptionSchema<SdiOptions> make_sdi_schema() {
  using O = SdiOptions;
  OptionSchema<O> s;
  s.field("inversion_steps", &O::inversion_steps,
          "Euler (= DDIM) steps of each inversion; 0: int(10 t), at least 1",
          checks::int_range<int>(0, 10000));
  s.field("tau_max", &O::tau_max, "the inversion runs to t + τ, τ ~ U(0, tau_max)",
          checks::range(0.0, 1.0));
  s.field("inversion_cfg", &O::inversion_cfg, "guidance weight while inverting (negative allowed)",
          checks::range(-100.0, 100.0));
  return s;
}

// Labels of `classes`: each in [0, 1000000].
std::string class_list_problem(const std::vector<int>& labels) {
  for (int label : labels)
    if (label < 0 || label > 1'000'000)
      return "labels must lie in [0, 1000000], found " + std::to_string(label);
  return std::string();
}

OptionSchema<ScoreDistillationOptions> make_schema() {
  using O = ScoreDistillationOptions;
  const auto every = checks::int_range<int>(1, 10'000'000);
  OptionSchema<O> s;
  s.choice("method", &O::method, kScoreDistillationMethodNames,
           "sds (Poole et al. 2022), vsd (Wang et al. 2023) or sdi (Lukoianov et al. 2024)")
      .required("is required: sds, vsd or sdi");
  s.section("generator", &O::generator, generator_options_schema());
  s.field("particles", &O::particles, "images optimised together",
          checks::int_range<int64_t>(1, 4096));
  s.field("steps", &O::steps, "generator updates", checks::int_range<int>(1, 10'000'000));
  s.field("lr", &O::lr, "Adam learning rate of the generator", checks::range(1e-12, 10.0));
  s.field("seed", &O::seed, "particle k starts from seed + k; the run's noise from seed",
          checks::int_range<uint64_t>(0, int64_t{1} << 53));
  s.field("class", &O::class_label, "-1: no label (the null class, or an unconditional model)",
          checks::int_range<int64_t>(-1, 1'000'000))
      .emit_if([](const O& o) { return o.classes.empty(); });
  s.field("classes", &O::classes, "instead of class: labels cycled over the particles",
          checks::custom<std::vector<int>>("labels in [0, 1000000]", class_list_problem))
      .emit_if([](const O& o) { return !o.classes.empty(); });
  s.field("cfg", &O::cfg, "guidance weight of the prior", checks::range(0.0, 100.0));
  s.field("t_min", &O::t_min, "smallest time t ∈ (0, 1) drawn (sdi: where the annealing ends)",
          checks::range(0.0, 1.0));
  s.field("t_max", &O::t_max, "largest time drawn (sdi: where the annealing starts)",
          checks::range(0.0, 1.0));
  s.choice("weighting", &O::weighting, kDistillWeightingNames,
           "w(t): the VP variance σ²/(1 + σ²), or 1");
  s.section("vsd", &O::vsd, built_once<make_vsd_schema>())
      .applies(only_for("method", &O::method, kScoreDistillationMethodNames,
                        ScoreDistillationMethod::vsd));
  s.section("sdi", &O::sdi, built_once<make_sdi_schema>())
      .applies(only_for("method", &O::method, kScoreDistillationMethodNames,
                        ScoreDistillationMethod::sdi));
  s.field("log_every", &O::log_every, "steps between metrics.jsonl and progress lines", every);
  s.field("snapshot_every", &O::snapshot_every, "steps between rows of the progress grid", every);
  s.field("save_every", &O::save_every, "steps between saves of the resumable state", every);
  s.rule([](const O& o, const OptionFail& fail) {
    if (!o.classes.empty() && o.class_label >= 0)
      fail("classes", "give class or classes, not both (class: -1 leaves the labels to classes)");
    if (o.t_min > o.t_max)
      fail("t_min", "must not exceed t_max (" + format_double(o.t_max) + "), found " +
                        format_double(o.t_min));
  });
  return s;
}

}  // namespace

const OptionSchema<ScoreDistillationOptions>& score_distillation_schema() {
  return built_once<make_schema>();
}

ScoreDistillationOptions parse_score_distillation(ConfigNode& root) {
  return score_distillation_schema().parse(root);
}

YAML::Node emit_score_distillation(const ScoreDistillationOptions& o) {
  return score_distillation_schema().emit(o);
}

ScoreDistillationOptions load_score_distillation(const std::string& path, const std::vector<std::string>& overrides) {
  return score_distillation_schema().load(path, overrides);
}

int64_t particle_label(const ScoreDistillationOptions& o, int64_t k) {
  if (o.classes.empty()) return o.class_label;
  return o.classes[static_cast<size_t>(k) % o.classes.size()];
}

double sigma_at_time(const NoiseSchedule& schedule, double t) {
  t = std::clamp(t, 0.0, 1.0);
  double sigma;
  if (schedule.is_vp()) {
    const auto& sigmas = schedule.sigmas();
    const double position = t * static_cast<double>(sigmas.size() - 1);
    const auto lo = static_cast<size_t>(std::floor(position));
    const size_t hi = std::min(lo + 1, sigmas.size() - 1);
    const double frac = position - static_cast<double>(lo);
    sigma = std::exp((1 - frac) * std::log(sigmas[lo]) + frac * std::log(sigmas[hi]));
  } else if (schedule.kind() == ScheduleKind::flow) {
    sigma = t >= 1.0 ? schedule.sigma_max() : schedule.shift() * t / (1 - t);
  } else {
    sigma = std::exp(std::log(schedule.sigma_min()) + t * (std::log(schedule.sigma_max()) - std::log(schedule.sigma_min())));
  }
  return std::clamp(sigma, schedule.sigma_min(), schedule.sigma_max());
}

ScoreDistiller::ScoreDistiller(ScoreDistillationOptions options, GuidedDenoiserFn prior, NoiseSchedule schedule,
                               std::shared_ptr<ImageGenerator> generator, std::shared_ptr<ParticleScore> particle_score,
                               torch::Device device)
    : options_(std::move(options)),
      prior_(std::move(prior)),
      schedule_(std::move(schedule)),
      generator_(std::move(generator)),
      particle_score_(std::move(particle_score)),
      device_(device),
      gen_(at::make_generator<at::CPUGeneratorImpl>(options_.seed)) {
  if (options_.method == ScoreDistillationMethod::vsd && !particle_score_)
    throw ConfigError("method vsd needs a particle score model (vsd.network)");
  if (generator_->shape().particles != options_.particles)
    throw ConfigError("the generator has " + std::to_string(generator_->shape().particles) + " particles, the options " +
                      std::to_string(options_.particles));
  generator_->to(device_);
  optimizer_ = std::make_unique<torch::optim::Adam>(generator_->parameters(), torch::optim::AdamOptions(options_.lr));
}

torch::Tensor ScoreDistiller::draw_times() {
  const int64_t n = options_.particles;
  if (options_.method == ScoreDistillationMethod::sdi) {
    // Linear annealing from t_max to t_min over the run (Lukoianov et al. 2024, §5).
    const double frac = options_.steps > 1 ? static_cast<double>(steps_done_) / (options_.steps - 1) : 1.0;
    return torch::full({n}, options_.t_max - (options_.t_max - options_.t_min) * frac, torch::kFloat64);
  }
  return uniform_times();
}

torch::Tensor ScoreDistiller::uniform_times() {
  return options_.t_min + (options_.t_max - options_.t_min) * torch::rand({options_.particles}, gen_, torch::kFloat64);
}

torch::Tensor ScoreDistiller::sdi_noise(const torch::Tensor& render, double t) {
  const double tau = options_.sdi.tau_max * torch::rand({1}, gen_, torch::kFloat64).item<double>();
  const double target = std::min(t + tau, 1.0);
  const int steps = options_.sdi.inversion_steps > 0 ? options_.sdi.inversion_steps
                                                     : std::max(1, static_cast<int>(10 * target));
  // The path climbs the schedule's time axis in equal steps, t_k = target·(k + 1)/(steps + 1),
  // k = 0..steps, taking the render as x(σ(t_0)): like DDIM inversion in practice (null-text
  // inversion, diffusers' DDIMInverseScheduler), whose first ε̂ is evaluated at the first
  // timestep of the grid, not at σ → 0, where ε̂ = (x − D)/σ of an off-manifold render blows up.
  std::vector<double> path;
  for (int k = 0; k <= steps; ++k) {
    const double sigma = sigma_at_time(schedule_, target * (k + 1) / (steps + 1));
    if (path.empty() || sigma > path.back()) path.push_back(sigma);
  }
  if (path.size() < 2) return torch::zeros_like(render);
  const double cfg = options_.sdi.inversion_cfg;
  const DenoiserFn denoiser = [&](const torch::Tensor& x, const torch::Tensor& sigma) { return prior_(x, sigma, cfg); };
  const auto latent = invert_ode("euler", denoiser, render, path);
  return (latent - render) / path.back();
}

DistillStepReport ScoreDistiller::step() {
  const int64_t n = options_.particles;
  torch::Tensor azimuths;
  if (generator_->has_views()) azimuths = torch::rand({n}, gen_, torch::kFloat64) * (2 * M_PI);
  const auto times = draw_times();
  const std::vector<double> sigma_values = sigmas_at(schedule_, times);
  std::vector<double> weights;
  for (double value : sigma_values) weights.push_back(weight_at(options_.weighting, value));
  const auto sigma = torch::tensor(sigma_values, torch::kFloat32).to(device_);
  const auto w = torch::tensor(weights, torch::kFloat32).to(device_).view({-1, 1, 1, 1});
  const auto sigma4 = sigma.view({-1, 1, 1, 1});

  const auto render = generator_->render(azimuths.defined() ? azimuths.to(device_) : azimuths);
  torch::Tensor grad;
  {
    torch::NoGradGuard no_grad;
    const auto g = render.detach();
    torch::Tensor noise;
    if (options_.method == ScoreDistillationMethod::sdi) noise = sdi_noise(g, times[0].item<double>());
    else noise = torch::randn(g.sizes(), gen_, torch::kFloat32).to(device_);
    const auto x = g + sigma4 * noise;
    const auto denoised = prior_(x, sigma, options_.cfg);
    // ε̂ − ε = (g − D)/σ; for VSD ε̂ − ε̂_φ = (D_φ − D)/σ.
    const auto reference = options_.method == ScoreDistillationMethod::vsd ? particle_score_->denoise(x, sigma) : g;
    grad = w * (reference - denoised) / sigma4;
  }
  optimizer_->zero_grad();
  render.backward(grad);
  optimizer_->step();

  DistillStepReport report;
  report.t = times.mean().item<double>();
  report.loss = 0.5 * grad.pow(2).mean().item<double>();
  if (options_.method == ScoreDistillationMethod::vsd) {
    const auto g = render.detach();
    for (int u = 0; u < options_.vsd.updates; ++u) {
      const std::vector<double> fit_sigmas = sigmas_at(schedule_, uniform_times());
      const auto noise = torch::randn(g.sizes(), gen_, torch::kFloat32).to(device_);
      report.particle_score_loss = particle_score_->fit(g, torch::tensor(fit_sigmas, torch::kFloat32).to(device_), noise);
    }
  }
  report.step = ++steps_done_;
  return report;
}

torch::Tensor ScoreDistiller::render(const torch::Tensor& azimuths) {
  torch::NoGradGuard no_grad;
  return generator_->render(azimuths.defined() ? azimuths.to(device_) : azimuths).to(torch::kCPU, torch::kFloat32);
}

void ScoreDistiller::save(const std::string& path) {
  torch::serialize::OutputArchive archive, generator, optimizer;
  generator_->save(generator);
  optimizer_->save(optimizer);
  archive.write("generator", generator);
  archive.write("optimizer", optimizer);
  archive.write("rng_state", gen_.get_state());
  archive.write("step", torch::tensor(static_cast<int64_t>(steps_done_)));
  if (particle_score_ && options_.method == ScoreDistillationMethod::vsd) {
    torch::serialize::OutputArchive score;
    particle_score_->save(score);
    archive.write("particle_score", score);
  }
  write_file_atomic_at(path, [&](const std::string& temp) { archive.save_to(temp); });
}

void ScoreDistiller::load(const std::string& path) {
  try {
    torch::serialize::InputArchive archive, generator, optimizer;
    archive.load_from(path);
    archive.read("generator", generator);
    generator_->load(generator);
    generator_->to(device_);
    archive.read("optimizer", optimizer);
    optimizer_->load(optimizer);
    torch::Tensor rng, step;
    archive.read("rng_state", rng);
    gen_.set_state(rng);
    archive.read("step", step);
    steps_done_ = static_cast<int>(step.item<int64_t>());
    if (particle_score_ && options_.method == ScoreDistillationMethod::vsd) {
      torch::serialize::InputArchive score;
      archive.read("particle_score", score);
      particle_score_->load(score);
    }
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": not a score-distillation state of this configuration (" +
                          std::string(e.what_without_backtrace()).substr(0, 200) + ")");
  }
}

ImageStatistics image_statistics(const torch::Tensor& images) {
  ImageStatistics s;
  const auto x = images.to(torch::kFloat64);
  s.mean_abs = x.abs().mean().item<double>();
  const int64_t c = x.size(1);
  const auto kernel = torch::tensor({0.0, 1.0, 0.0, 1.0, -4.0, 1.0, 0.0, 1.0, 0.0}, torch::kFloat64)
                          .view({1, 1, 3, 3})
                          .repeat({c, 1, 1, 1});
  const auto laplacian = torch::nn::functional::conv2d(
      x, kernel, torch::nn::functional::Conv2dFuncOptions().groups(c));
  s.laplacian_variance = laplacian.flatten(1).var(1).mean().item<double>();
  return s;
}

}  // namespace diffuse
