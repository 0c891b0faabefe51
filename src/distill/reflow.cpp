#include "diffuse/distill/reflow.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "diffuse/core/atomic_file.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/eval/curve_plot.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/io/image_io.h"
#include "diffuse/train/checkpoint.h"
#include "sampling/sample_labels.h"
#include <spdlog/spdlog.h>
#include "diffuse/io/tensor_file.h"
#include "diffuse/sampling/sampler.h"

namespace diffuse {
namespace fs = std::filesystem;

namespace {

std::string chunk_name(int64_t chunk) {
  char name[32];
  std::snprintf(name, sizeof(name), "pairs_%06lld.pt", static_cast<long long>(chunk));
  return name;
}

// What fixes the couplings: two runs with the same manifest draw the same pairs.
nlohmann::json coupling_manifest(const ModelOptions& net, const std::vector<std::string>& class_names,
                                 const CouplingOptions& options) {
  const auto& g = options.generate;
  return {{"format", "diffuse couplings 1"},
          {"teacher", options.teacher},
          {"channels", net.in_channels},
          {"image_size", net.image_size},
          {"class_names", class_names},
          {"sampler", g.sampler},
          {"steps", g.steps},
          {"spacing", enum_name(g.spacing, kTimestepSpacingNames)},
          {"cfg", g.cfg},
          {"chunk_size", options.chunk_size},
          {"first_seed", options.first_seed}};
}

void check_ode_sampler(const GenerateOptions& g) {
  if (find_sampler(g.sampler).stochastic(g.sampler_options))
    throw ConfigError("reflow: sampler '" + g.sampler + "' is stochastic; a coupling needs the sample as a "
                      "function of its noise (use euler, heun, dpmpp2m or ddim with eta 0)");
}

// Rows [0, count) of a chunk file, or -1 when it is missing or unreadable (drawn again).
int64_t chunk_rows(const fs::path& path) {
  if (!fs::is_regular_file(path)) return -1;
  std::vector<torch::Tensor> tensors;
  try {
    torch::load(tensors, path.string());
  } catch (const c10::Error&) {
    return -1;
  }
  return tensors.size() == 3 ? tensors[0].size(0) : -1;
}

}  // namespace

int64_t write_couplings(Precond& teacher, const std::vector<std::string>& class_names,
                        const CouplingOptions& options, const std::string& dir,
                        const std::function<void(int64_t, int64_t)>& progress) {
  if (options.pairs < 1) throw ConfigError("reflow: --pairs must be >= 1");
  if (options.chunk_size < 1) throw ConfigError("reflow: the chunk size must be >= 1");
  check_ode_sampler(options.generate);
  const auto manifest = coupling_manifest(teacher->net().options(), class_names, options);
  fs::create_directories(dir);
  const fs::path manifest_path = fs::path(dir) / "couplings.json";
  if (fs::exists(manifest_path)) {
    std::ifstream in(manifest_path);
    const auto earlier = nlohmann::json::parse(in, nullptr, false);
    if (earlier.is_discarded())
      throw DataError(manifest_path.string() + ": not a JSON couplings manifest");
    for (auto it = manifest.begin(); it != manifest.end(); ++it)
      if (earlier.value(it.key(), nlohmann::json()) != it.value())
        throw ConfigError(dir + ": holds couplings drawn with " + it.key() + " = " +
                          earlier.value(it.key(), nlohmann::json()).dump() + ", not " + it.value().dump() +
                          "; use another --out or the same settings");
  }
  write_text_file_atomic(manifest_path.string(), manifest.dump(2) + "\n");

  const auto& net = teacher->net().options();
  const int64_t classes = net.num_classes > 0 ? net.num_classes : 0;
  const int64_t chunks = (options.pairs + options.chunk_size - 1) / options.chunk_size;
  int64_t drawn = 0, done = 0;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = chunk * options.chunk_size;
    const int64_t count = std::min(options.chunk_size, options.pairs - begin);
    const fs::path path = fs::path(dir) / chunk_name(chunk);
    // A chunk that is complete for a smaller --pairs but short for this one is drawn again.
    if (chunk_rows(path) != count) {
      GenerateOptions g = options.generate;
      g.seeds.clear();
      g.labels.clear();
      for (int64_t i = begin; i < begin + count; ++i) {
        g.seeds.push_back(options.first_seed + static_cast<uint64_t>(i));
        if (classes > 0) g.labels.push_back(i % classes);
      }
      // generate_samples starts every sample from σ_0 times the first draw of its seed's stream.
      SeededNoise noise(g.seeds, torch::kCPU);
      const auto z = noise.randn({net.in_channels, net.image_size, net.image_size});
      const auto samples = generate_samples(teacher, g, [&](const SamplerStep& step) {
        if (progress) progress(done + count * step.nfe_done / std::max<int64_t>(step.nfe_total, 1), options.pairs);
      });
      const auto labels = classes > 0 ? torch::tensor(g.labels, torch::kLong)
                                      : torch::zeros({count}, torch::kLong);
      write_tensor_list_file(path.string(), {z, samples, labels});
      drawn += count;
    }
    done += count;
    if (progress) progress(done, options.pairs);
  }
  return drawn;
}

StraightnessReport measure_straightness(Precond& model, const GenerateOptions& options) {
  const auto& schedule = model->schedule();
  if (schedule.kind() != ScheduleKind::flow)
    throw ConfigError(std::string("straightness is defined for flow-matching models (diffusion.schedule flow); "
                                  "this model uses ") + enum_name(schedule.kind(), kScheduleKindNames));
  if (options.seeds.empty()) throw ConfigError("straightness: no seeds");
  if (options.batch_size < 1) throw ConfigError("straightness: batch size must be >= 1");
  const auto sigmas = sampling_sigmas(schedule, options.steps, TimestepSpacing::linear_t);
  const int steps = static_cast<int>(sigmas.size()) - 1;
  std::vector<double> t(sigmas.size());
  for (size_t k = 0; k < sigmas.size(); ++k) t[k] = sigmas[k] / (1.0 + sigmas[k]);

  const auto& net = model->net().options();
  const bool conditional = net.num_classes > 0;
  const auto device = model->device();
  const int64_t total = static_cast<int64_t>(options.seeds.size());
  StraightnessReport report;
  report.t.assign(t.begin(), t.end() - 1);
  report.deviation.assign(static_cast<size_t>(steps), 0.0);
  report.samples = total;
  report.steps = steps;
  double gap_sq = 0.0;
  torch::NoGradGuard no_grad;
  for (int64_t begin = 0; begin < total; begin += options.batch_size) {
    const int64_t end = std::min(total, begin + options.batch_size);
    std::vector<uint64_t> seeds(options.seeds.begin() + begin, options.seeds.begin() + end);
    SeededNoise noise(seeds, device);
    const auto labels = conditional ? sample_labels(options.labels, net.num_classes, begin, end, device) : torch::Tensor();
    // Guidance 1 (or an unconditional model) gives the plain denoiser.
    const Denoiser denoiser = make_model_denoiser(model, labels, conditional ? options.cfg : 1.0);
    // Euler in x_t: x_{t'} = x_t + (t' − t) v with v = (x_t − D(x_t/(1−t); σ))/t.
    auto x_t = noise.randn({net.in_channels, net.image_size, net.image_size}).to(torch::kFloat64) * t[0];
    const auto start = x_t.clone();
    std::vector<torch::Tensor> velocities;
    for (int k = 0; k < steps; ++k) {
      const auto sigma = torch::full({x_t.size(0)}, sigmas[static_cast<size_t>(k)],
                                     torch::TensorOptions(torch::kFloat32).device(device));
      const auto d = denoiser((x_t / (1.0 - t[static_cast<size_t>(k)])).to(torch::kFloat32), sigma)
                         .to(torch::kFloat64);
      const auto v = (x_t - d) / t[static_cast<size_t>(k)];
      velocities.push_back(v);
      x_t = x_t + (t[static_cast<size_t>(k) + 1] - t[static_cast<size_t>(k)]) * v;
    }
    const auto chord = (start - x_t) / t[0];
    for (int k = 0; k < steps; ++k)
      report.deviation[static_cast<size_t>(k)] +=
          (chord - velocities[static_cast<size_t>(k)]).square().mean({1, 2, 3}).sum().item<double>();
    gap_sq += (start - t[0] * velocities.front() - x_t).square().mean({1, 2, 3}).sum().item<double>();
  }
  for (int k = 0; k < steps; ++k) {
    auto& dev = report.deviation[static_cast<size_t>(k)];
    dev /= static_cast<double>(total);
    report.straightness += (t[static_cast<size_t>(k)] - t[static_cast<size_t>(k) + 1]) * dev / t[0];
  }
  report.one_step_gap = std::sqrt(gap_sq / static_cast<double>(total));
  return report;
}

std::string straightness_json(const StraightnessReport& r) {
  nlohmann::json j{{"straightness", r.straightness}, {"one_step_gap", r.one_step_gap}, {"samples", r.samples},
                   {"steps", r.steps}, {"t", r.t}, {"deviation", r.deviation}};
  return j.dump(2) + "\n";
}

namespace {

StraightnessReport measure_checkpoint(const std::string& path, const ReflowOptions& o) {
  LoadedModel model = load_model_for_inference(path, /*use_ema=*/true, o.device);
  GenerateOptions g = o.couplings.generate;
  g.steps = o.measure_steps;
  g.seeds.clear();
  for (int64_t i = 0; i < o.measure_samples; ++i) g.seeds.push_back(o.measure_first_seed + static_cast<uint64_t>(i));
  return measure_straightness(model.precond, g);
}

void write_straightness_chart(const std::string& path, const StraightnessReport& before,
                              const StraightnessReport& after) {
  CurveSeries teacher{"teacher", before.t, before.deviation};
  CurveSeries student{"reflowed", after.t, after.deviation};
  write_curves(path, {{"straightness: deviation per pixel", "t", {teacher, student}, true}});
}

}  // namespace

ReflowResult reflow(const ReflowOptions& o) {
  const fs::path out = o.out_dir;
  ReflowResult result;
  {
    LoadedModel teacher = load_model_for_inference(o.teacher, /*use_ema=*/true, o.device);
    if (teacher.config.diffusion.schedule != ScheduleKind::flow)
      throw ConfigError(o.teacher + ": reflow retrains a flow-matching model (diffusion.schedule flow); this "
                        "checkpoint uses schedule " + enum_name(teacher.config.diffusion.schedule, kScheduleKindNames));
    CouplingOptions couplings = o.couplings;
    couplings.teacher = o.teacher;
    spdlog::info("reflow: drawing {} couplings of {} into {} ({} {} steps, cfg {})", couplings.pairs, o.teacher,
                 (out / "pairs").string(), couplings.generate.sampler, couplings.generate.steps,
                 format_double(couplings.generate.cfg));
    result.pairs_drawn =
        write_couplings(teacher.precond, teacher.class_names, couplings, (out / "pairs").string(), o.progress);
  }
  result.before = measure_checkpoint(o.teacher, o);
  write_text_file_atomic((out / "straightness_teacher.json").string(), straightness_json(result.before));
  spdlog::info("teacher straightness {:.4g} per pixel; one Euler step lands {:.4g} (RMS per pixel) from its "
               "{}-step path", result.before.straightness, result.before.one_step_gap, result.before.steps);

  ExperimentConfig config = o.train;
  config.data.type = DatasetType::couplings;
  config.data.path = (out / "pairs").string();
  config.data.hflip = false;
  config.run_dir = (out / "train").string();
  config.train.init_from = o.teacher;
  TrainerOptions trainer;
  trainer.stop_requested = o.stop_requested;
  const fs::path last = out / "train" / "ckpt" / "last.pt";
  if (fs::exists(last)) {
    CheckpointReader reader(last.string());
    if (reader.meta().step >= config.train.steps) {
      result.training.step = reader.meta().step;
      result.training.last_checkpoint = last.string();
      spdlog::info("reflow: {} has finished its {} steps", last.string(), config.train.steps);
    } else {
      trainer.resume = last.string();
    }
  }
  if (result.training.last_checkpoint.empty()) result.training = train(config, trainer);
  if (result.training.interrupted) return result;

  result.after = measure_checkpoint(result.training.last_checkpoint, o);
  write_text_file_atomic((out / "straightness_reflowed.json").string(), straightness_json(result.after));
  write_straightness_chart((out / ("straightness" + image_extension(3))).string(), result.before, result.after);
  nlohmann::json summary{{"teacher", o.teacher},
                         {"checkpoint", result.training.last_checkpoint},
                         {"pairs", o.couplings.pairs},
                         {"straightness_teacher", result.before.straightness},
                         {"straightness_reflowed", result.after.straightness},
                         {"one_step_gap_teacher", result.before.one_step_gap},
                         {"one_step_gap_reflowed", result.after.one_step_gap}};
  write_text_file_atomic((out / "reflow.json").string(), summary.dump(2) + "\n");
  spdlog::info("reflowed straightness {:.4g} per pixel (teacher {:.4g}); one-step gap {:.4g} (teacher {:.4g})",
               result.after.straightness, result.before.straightness, result.after.one_step_gap,
               result.before.one_step_gap);
  return result;
}

}  // namespace diffuse
