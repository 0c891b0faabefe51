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

void parse_vsd(ConfigNode n, VsdOptions& o) {
  n.read_enum("network", o.network, kParticleScoreNetworkNames);
  if (o.network == ParticleScoreNetwork::lora) {
    n.read("lora_rank", o.lora_rank);
    n.check_int_range("lora_rank", o.lora_rank, 1, 1024);
  }
  n.read("lr", o.lr);
  n.check_range("lr", o.lr, 1e-12, 10.0);
  n.read("updates", o.updates);
  n.check_int_range("updates", o.updates, 1, 100);
  n.finish();
}

void parse_sdi(ConfigNode n, SdiOptions& o) {
  n.read("inversion_steps", o.inversion_steps);
  n.check_int_range("inversion_steps", o.inversion_steps, 0, 10000);
  n.read("tau_max", o.tau_max);
  n.check_range("tau_max", o.tau_max, 0.0, 1.0);
  n.read("inversion_cfg", o.inversion_cfg);
  n.check_range("inversion_cfg", o.inversion_cfg, -100.0, 100.0);
  n.finish();
}

}  // namespace

ScoreDistillationOptions parse_score_distillation(ConfigNode& root) {
  ScoreDistillationOptions o;
  if (!root.has("method")) root.fail("method", "is required: sds, vsd or sdi");
  root.read_enum("method", o.method, kScoreDistillationMethodNames);
  {
    ConfigNode g = root.child("generator");
    o.generator = parse_generator_options(g);
    g.finish();
  }
  root.read("particles", o.particles);
  root.check_int_range("particles", o.particles, 1, 4096);
  root.read("steps", o.steps);
  root.check_int_range("steps", o.steps, 1, 10'000'000);
  root.read("lr", o.lr);
  root.check_range("lr", o.lr, 1e-12, 10.0);
  int64_t seed = 0;
  root.read("seed", seed);
  root.check_int_range("seed", seed, 0, int64_t{1} << 53);
  o.seed = static_cast<uint64_t>(seed);
  root.read("class", o.class_label);
  root.check_int_range("class", o.class_label, -1, 1'000'000);
  if (root.has("classes") && o.class_label >= 0)
    root.fail("classes", "give class or classes, not both (class: -1 leaves the labels to classes)");
  root.read("classes", o.classes);
  for (int label : o.classes)
    if (label < 0 || label > 1'000'000) root.fail("classes", "labels must lie in [0, 1000000], found " + std::to_string(label));
  root.read("cfg", o.cfg);
  root.check_range("cfg", o.cfg, 0.0, 100.0);
  root.read("t_min", o.t_min);
  root.check_range("t_min", o.t_min, 0.0, 1.0);
  root.read("t_max", o.t_max);
  root.check_range("t_max", o.t_max, 0.0, 1.0);
  if (o.t_min > o.t_max) root.fail("t_min", "must not exceed t_max (" + format_double(o.t_max) + "), found " + format_double(o.t_min));
  root.read_enum("weighting", o.weighting, kDistillWeightingNames);
  if (o.method == ScoreDistillationMethod::vsd) parse_vsd(root.child("vsd"), o.vsd);
  if (o.method == ScoreDistillationMethod::sdi) parse_sdi(root.child("sdi"), o.sdi);
  root.read("log_every", o.log_every);
  root.check_int_range("log_every", o.log_every, 1, 10'000'000);
  root.read("snapshot_every", o.snapshot_every);
  root.check_int_range("snapshot_every", o.snapshot_every, 1, 10'000'000);
  root.read("save_every", o.save_every);
  root.check_int_range("save_every", o.save_every, 1, 10'000'000);
  root.finish();
  return o;
}

YAML::Node emit_score_distillation(const ScoreDistillationOptions& o) {
  YAML::Node n;
  emit_enum(n, "method", o.method, kScoreDistillationMethodNames);
  n["generator"] = emit_generator_options(o.generator);
  emit_value(n, "particles", o.particles);
  emit_value(n, "steps", o.steps);
  emit_value(n, "lr", o.lr);
  emit_value(n, "seed", static_cast<int64_t>(o.seed));
  if (o.classes.empty()) emit_value(n, "class", o.class_label);
  else n["classes"] = o.classes;
  emit_value(n, "cfg", o.cfg);
  emit_value(n, "t_min", o.t_min);
  emit_value(n, "t_max", o.t_max);
  emit_enum(n, "weighting", o.weighting, kDistillWeightingNames);
  if (o.method == ScoreDistillationMethod::vsd) {
    YAML::Node v;
    emit_enum(v, "network", o.vsd.network, kParticleScoreNetworkNames);
    if (o.vsd.network == ParticleScoreNetwork::lora) emit_value(v, "lora_rank", o.vsd.lora_rank);
    emit_value(v, "lr", o.vsd.lr);
    emit_value(v, "updates", o.vsd.updates);
    n["vsd"] = v;
  }
  if (o.method == ScoreDistillationMethod::sdi) {
    YAML::Node s;
    emit_value(s, "inversion_steps", o.sdi.inversion_steps);
    emit_value(s, "tau_max", o.sdi.tau_max);
    emit_value(s, "inversion_cfg", o.sdi.inversion_cfg);
    n["sdi"] = s;
  }
  emit_value(n, "log_every", o.log_every);
  emit_value(n, "snapshot_every", o.snapshot_every);
  emit_value(n, "save_every", o.save_every);
  return n;
}

ScoreDistillationOptions load_score_distillation(const std::string& path, const std::vector<std::string>& overrides) {
  ConfigNode root = ConfigNode::load_file(path);
  for (const auto& o : overrides) root.apply_override(o);
  return parse_score_distillation(root);
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
