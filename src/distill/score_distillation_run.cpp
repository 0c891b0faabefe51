// run_score_distillation (score_distillation.h): the prior from a checkpoint, the loop, its
// logs, pictures and resumable state.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "diffuse/core/atomic_file.h"
#include "diffuse/core/error.h"
#include "diffuse/core/file_io.h"
#include "diffuse/distill/score_distillation.h"
#include "diffuse/eval/run_curves.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/io/image_io.h"
#include "train/training_common.h"

namespace diffuse {
namespace {
namespace fs = std::filesystem;

// The labels every particle is rendered for: the chosen class, the null class of a
// class-conditional model (only where label dropout trained it), or none.
torch::Tensor distill_labels(const LoadedModel& model, const ScoreDistillationOptions& o, const std::string& path,
                             torch::Device device) {
  const int64_t classes = model.config.model.num_classes;
  const bool guided = o.cfg != 1.0 || (o.method == ScoreDistillationMethod::sdi && o.sdi.inversion_cfg != 1.0);
  const char* key = o.classes.empty() ? "class" : "classes";
  bool null_class = false;
  std::vector<int64_t> labels;
  for (int64_t k = 0; k < o.particles; ++k) {
    const int64_t label = particle_label(o, k);
    if (classes <= 0 && label >= 0)
      throw ConfigError(std::string(key) + ": " + std::to_string(label) + " given, but " + path +
                        " is unconditional; use class: -1");
    if (label >= classes && classes > 0)
      throw ConfigError(std::string(key) + ": " + path + " has classes 0-" + std::to_string(classes - 1) +
                        ", found " + std::to_string(label));
    null_class = null_class || label < 0;
    labels.push_back(label >= 0 ? label : classes);
  }
  if (classes <= 0) {
    if (guided) throw ConfigError("cfg: guidance needs a class-conditional checkpoint, and " + path + " is unconditional");
    return {};
  }
  if ((null_class || guided) && model.config.diffusion.p_uncond <= 0)
    throw ConfigError(path + " was trained without label dropout (diffusion.p_uncond 0), so its null class is "
                      "untrained: give a class and keep cfg (and sdi.inversion_cfg) at 1");
  return torch::tensor(labels, torch::kInt64).to(device);
}

GuidedDenoiserFn make_prior(Precond precond, torch::Tensor labels) {
  return [precond, labels](const torch::Tensor& x, const torch::Tensor& sigma, double cfg) mutable {
    const auto denoised = cfg == 1.0 || !labels.defined() ? precond->denoise(x, sigma, labels)
                                                          : make_cfg_denoiser(precond, labels, cfg)(x, sigma);
    return denoised.clamp(-1.0, 1.0);
  };
}

// Renders for logs and pictures: the volume from azimuth 0.
torch::Tensor front_renders(ScoreDistiller& distiller) {
  const int64_t n = distiller.generator().shape().particles;
  return distiller.generator().has_views() ? distiller.render(torch::zeros({n}, torch::kFloat64)) : distiller.render();
}

std::string step_name(int step) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "step_%07d", step);
  return buffer;
}

void write_progress_picture(const fs::path& out, const std::string& ext) {
  std::vector<fs::path> rows;
  for (const auto& entry : fs::directory_iterator(out / "snapshots"))
    if (entry.path().extension() == ext) rows.push_back(entry.path());
  if (rows.empty()) return;
  std::sort(rows.begin(), rows.end());
  std::vector<torch::Tensor> images;
  for (const auto& row : rows) images.push_back(read_image(row.string(), 0));
  write_image((out / ("progress" + ext)).string(), torch::cat(images, 1));
}

void write_final_pictures(ScoreDistiller& distiller, const ScoreDistillationOptions& o, const fs::path& out,
                          const std::string& ext, DistillRunResult& result) {
  const int64_t n = o.particles;
  const auto renders = front_renders(distiller);
  fs::create_directories(out / "renders");
  // Named as diffuse sample names its images, so that diffuse eval --classes reads the label.
  for (int64_t k = 0; k < n; ++k) {
    const int64_t label = particle_label(o, k);
    const std::string suffix = label >= 0 ? "_class" + std::to_string(label) : "";
    write_image((out / "renders" / ("particle_" + std::to_string(k) + suffix + ext)).string(), renders[k]);
  }
  write_image_grid((out / ("final" + ext)).string(), renders, std::min<int64_t>(n, 8));
  result.statistics = image_statistics(renders);
  if (o.generator.kind != GeneratorKind::volume) return;
  const int64_t views = o.generator.volume.turntable_views;
  std::vector<torch::Tensor> turns;
  for (int64_t v = 0; v < views; ++v)
    turns.push_back(distiller.render(torch::full({n}, 2 * M_PI * static_cast<double>(v) / static_cast<double>(views),
                                                 torch::kFloat64)));
  const auto tiles = torch::stack(turns, 1);  // [n, views, C, H, W]
  fs::create_directories(out / "turntable");
  for (int64_t k = 0; k < n; ++k)
    for (int64_t v = 0; v < views; ++v)
      write_image((out / "turntable" / ("particle_" + std::to_string(k) + "_view_" + std::to_string(v) + ext)).string(),
                  tiles[k][v]);
  write_image_grid((out / ("turntable" + ext)).string(), tiles.flatten(0, 1), views);
  result.statistics = image_statistics(tiles.flatten(0, 1));
}

nlohmann::json metrics_row(const DistillStepReport& report, const ScoreDistillationOptions& o,
                           const ImageStatistics& stats, double seconds) {
  nlohmann::json row{{"step", report.step},   {"t", report.t},
                     {"loss", report.loss},   {"lr", o.lr},
                     {"mean_abs", stats.mean_abs}, {"laplacian_variance", stats.laplacian_variance},
                     {"seconds", std::round(seconds * 1000) / 1000}};
  if (o.method == ScoreDistillationMethod::vsd) row["particle_score_loss"] = report.particle_score_loss;
  return row;
}

// The generator, the particle score of VSD and the distiller over `model`'s prior.
ScoreDistiller make_distiller(const DistillRunOptions& r, const LoadedModel& model, const torch::Tensor& labels) {
  const auto& o = r.distill;
  const auto& mo = model.config.model;
  std::vector<uint64_t> seeds;
  for (int64_t k = 0; k < o.particles; ++k) seeds.push_back(o.seed + static_cast<uint64_t>(k));
  auto generator = make_image_generator(o.generator, {o.particles, mo.in_channels, mo.image_size, mo.image_size}, seeds);
  std::shared_ptr<ParticleScore> particle_score;
  if (o.method == ScoreDistillationMethod::vsd) {
    LoadedModel second = load_model_for_inference(r.checkpoint, r.use_ema, r.device);
    particle_score = make_network_particle_score(second.precond, labels, o.vsd, o.seed ^ 0x5EEDF00DULL);
  }
  return ScoreDistiller(o, make_prior(model.precond, labels), model.precond->schedule(), generator, particle_score,
                        r.device);
}

// Resumes the run whose state lies in `state`, or starts the out directory afresh; returns
// whether it resumed.
bool open_run_directory(const DistillRunOptions& r, ScoreDistiller& distiller, const fs::path& state) {
  const auto& o = r.distill;
  const fs::path out(r.out_dir);
  // The run's identity: a state is only continued under the same checkpoint and options.
  const std::string record = "checkpoint: " + fs::absolute(r.checkpoint).string() + "\n" +
                             to_yaml_string(emit_score_distillation(o));
  const fs::path config = out / "config.yaml";
  bool resumed = false;
  if (fs::exists(state)) {
    // A state without its config.yaml is a foreign run too: "" matches no record.
    const std::string before = fs::is_regular_file(config) ? read_file_bytes(config.string()) : "";
    if (before != record)
      throw ConfigError(r.out_dir + " holds a run with another checkpoint or other options (" + config.string() +
                        "); choose another --out or delete it to start over");
    distiller.load(state.string());
    resumed = true;
    training::truncate_metrics(out / "metrics.jsonl", distiller.steps_done());
    spdlog::info("resuming {} at step {}/{}", r.out_dir, distiller.steps_done(), o.steps);
  } else {
    fs::create_directories(out);
    for (const char* stale : {"metrics.jsonl", "snapshots"}) fs::remove_all(out / stale);
    write_text_file_atomic(config.string(), record);
  }
  fs::create_directories(out / "snapshots");
  return resumed;
}

// One metrics row and one log line for the step of `report`, `seconds` into a run that
// began (or resumed) at step `first`.
void log_step(std::ofstream& metrics, ScoreDistiller& distiller, const ScoreDistillationOptions& o,
              const DistillStepReport& report, double seconds, int first) {
  const auto stats = image_statistics(front_renders(distiller));
  metrics << metrics_row(report, o, stats, seconds).dump() << "\n" << std::flush;
  const double rate = (report.step - first) / std::max(seconds, 1e-9);
  spdlog::info("step {}/{} {} {:.0f}% | t {:.3f} | loss {:.4g}{} | mean |x| {:.3f} | {:.2f} steps/s | ETA {}",
               report.step, o.steps, training::progress_bar(static_cast<double>(report.step) / o.steps),
               100.0 * report.step / o.steps, report.t, report.loss,
               o.method == ScoreDistillationMethod::vsd ? fmt::format(" | φ loss {:.4g}", report.particle_score_loss) : "",
               stats.mean_abs, rate, training::format_duration((o.steps - report.step) / std::max(rate, 1e-9)));
}

// Steps until o.steps or a stop request, logging, snapshotting and saving `state` on the way;
// fills the result's steps_done, seconds and interrupted.
void run_steps(const DistillRunOptions& r, ScoreDistiller& distiller, const fs::path& state, const std::string& ext,
               DistillRunResult& result) {
  const auto& o = r.distill;
  const fs::path out(r.out_dir);
  std::ofstream metrics(out / "metrics.jsonl", std::ios::app);
  const auto start = std::chrono::steady_clock::now();
  const int first = distiller.steps_done();
  while (distiller.steps_done() < o.steps) {
    const DistillStepReport report = distiller.step();
    const bool last = report.step == o.steps;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (report.step % o.log_every == 0 || last) log_step(metrics, distiller, o, report, seconds, first);
    if (report.step % o.snapshot_every == 0 || last)
      write_image_grid((out / "snapshots" / (step_name(report.step) + ext)).string(), front_renders(distiller), o.particles);
    const bool stop = r.stop_requested && r.stop_requested->load();
    if (report.step % o.save_every == 0 || last || stop) distiller.save(state.string());
    if (stop && !last) {
      result.interrupted = true;
      break;
    }
  }
  result.steps_done = distiller.steps_done();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  metrics.close();
}

nlohmann::json run_summary(const DistillRunOptions& r, const LoadedModel& model, const DistillRunResult& result) {
  const auto& o = r.distill;
  return nlohmann::json{
      {"checkpoint", fs::absolute(r.checkpoint).string()},
      {"checkpoint_step", model.step},
      {"weights", model.using_ema ? "ema" : "raw"},
      {"method", enum_name(o.method, kScoreDistillationMethodNames)},
      {"generator", enum_name(o.generator.kind, kGeneratorKindNames)},
      {"particles", o.particles},
      {"steps", o.steps},
      {"classes", [&] {
         std::vector<int64_t> per_particle;
         for (int64_t k = 0; k < o.particles; ++k) per_particle.push_back(particle_label(o, k));
         return per_particle;
       }()},
      {"cfg", o.cfg},
      {"mean_abs", result.statistics.mean_abs},
      {"laplacian_variance", result.statistics.laplacian_variance},
      {"seconds", std::round(result.seconds * 1000) / 1000},
  };
}

}  // namespace

DistillRunResult run_score_distillation(const DistillRunOptions& r) {
  const auto& o = r.distill;
  const fs::path out(r.out_dir);
  LoadedModel model = load_model_for_inference(r.checkpoint, r.use_ema, r.device);
  const auto& mo = model.config.model;
  if (mo.in_channels != 1 && mo.in_channels != 3)
    throw ConfigError(r.checkpoint + " is a " + std::to_string(mo.in_channels) +
                      "-channel latent model; diffuse distill renders images (1 or 3 channels)");
  const auto labels = distill_labels(model, o, r.checkpoint, r.device);
  ScoreDistiller distiller = make_distiller(r, model, labels);

  const fs::path state = out / "state.pt";
  DistillRunResult result;
  result.resumed = open_run_directory(r, distiller, state);
  const std::string ext = image_extension(mo.in_channels);
  run_steps(r, distiller, state, ext, result);
  write_progress_picture(out, ext);
  training::write_run_curves_picture(out);
  if (result.interrupted) return result;

  write_final_pictures(distiller, o, out, ext, result);
  write_text_file_atomic((out / "distill.json").string(), run_summary(r, model, result).dump(2) + "\n");
  return result;
}

}  // namespace diffuse
