// `diffuse invert`: DDIM inversion of existing images (sampling/invert.h): each image is run
// up the probability-flow ODE to the noise it would be sampled from, then sampled back with
// the same solver, so that the round trip's PSNR shows how exact the inversion is.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "args.h"
#include "diffuse/core/atomic_file.h"
#include "diffuse/core/blas_info.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/device.h"
#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/io/image_io.h"
#include "diffuse/io/tensor_file.h"
#include "diffuse/sampling/invert.h"
#include "input_images.h"
#include "metric_json.h"

namespace diffuse::cli {
namespace fs = std::filesystem;
namespace {

// The samplers that solve the probability-flow ODE, comma separated: the only ones that invert.
std::string ode_sampler_names() {
  return sampler_names([](const SamplerEntry& entry) { return entry.ode; });
}

std::vector<FlagSpec> invert_flags(const std::string& ode_samplers) {
  return {
      {"--checkpoint", "CKPT", "checkpoint written by diffuse train"},
      {"--input", "X", "image file, folder of images, or dataset slice (fashion:test[0:64])"},
      {"--out", "DIR", "output folder"},
      {"--sampler", "NAME", "the ODE solver, one of: " + ode_samplers + " (default euler = DDIM inversion)"},
      {"--steps", "N", "solver steps each way, 1-10000 (default 20)"},
      {"--spacing", "NAME", "σ grid as for diffuse sample (default: the model's own)"},
      {"--cfg", "W", "classifier-free guidance weight in [-100, 100], used both ways (default 1; needs labels)"},
      {"--class", "K", "class label of every image (0 to classes - 1)"},
      {"--classes", "LIST", "labels cycled over the images, e.g. 0-9 (default: the null class)"},
      {"--batch-size", "B", "images per network batch, 1-65536 (default 64)"},
      {"--no-ema", "", "use the raw weights instead of the EMA weights"},
      {"--resize", "", "convert inputs of another size or channel count to the model's"},
      thread_flag(),
  };
}

struct InvertRequest {
  std::string checkpoint;
  std::string input;
  std::string out_dir;
  InvertOptions options;
  bool spacing_given = false;  // else the spacing is the model's default, known once it loads
};

// Every flag is checked here, before the model loads.
InvertRequest read_invert_request(const Args& args, const std::string& ode_samplers) {
  InvertRequest r;
  r.checkpoint = args.require("--checkpoint");
  r.input = args.require("--input");
  r.out_dir = args.require("--out");
  if (args.has("--class") && args.has("--classes")) throw UsageError("give --class or --classes, not both");
  InvertOptions& o = r.options;
  o.sampler = args.get("--sampler", "euler");
  if (!find_sampler(o.sampler).ode)
    throw UsageError("--sampler " + o.sampler + " does not solve the probability-flow ODE; inversion takes one of: " +
                     ode_samplers);
  o.steps = static_cast<int>(args.get_int("--steps", 20, 1, 10000));
  o.cfg = args.get_double("--cfg", 1.0, -100.0, 100.0);
  if (args.has("--class")) o.labels = {args.get_int("--class", 0, 0, 1'000'000)};
  if (args.has("--classes")) o.labels = parse_int_list(args.get("--classes"), "--classes");
  o.batch_size = args.get_int("--batch-size", 64, 1, 65536);
  r.spacing_given = args.has("--spacing");
  if (r.spacing_given) o.spacing = timestep_spacing_from_name(args.get("--spacing"));
  return r;
}

// Fills in the model's default spacing and refuses models or labels inversion cannot serve.
void fit_request_to_model(InvertRequest& r, const LoadedModel& model) {
  InvertOptions& o = r.options;
  const auto& schedule = model.precond->schedule();
  if (!r.spacing_given) o.spacing = schedule.is_vp() ? TimestepSpacing::trailing : schedule.default_spacing();
  const int64_t classes = model.config.model.num_classes;
  const int64_t channels = model.config.model.in_channels;
  if (channels != 1 && channels != 3)
    throw ConfigError(r.checkpoint + " is a " + std::to_string(channels) +
                      "-channel latent model; diffuse invert reads images (1 or 3 channels)");
  // The null class (no labels) and the unconditional branch of guidance exist only where label
  // dropout trained them.
  if (classes > 0 && (o.labels.empty() || o.cfg != 1.0) && model.config.diffusion.p_uncond <= 0)
    throw ConfigError(r.checkpoint + " was trained without label dropout (diffusion.p_uncond 0), so its null class "
                      "is untrained: give the images' labels with --class or --classes" +
                      std::string(o.cfg != 1.0 ? " and drop --cfg" : ""));
}

// OUT/reconstructed/NAME.ext, OUT/grid.ext (input | reconstruction per row) and OUT/noise.pt.
void write_invert_tensors(const std::string& out_dir, const Inputs& in, const Inversion& inv, int64_t channels) {
  fs::create_directories(fs::path(out_dir) / "reconstructed");
  const std::string ext = image_extension(channels);
  for (int64_t k = 0; k < in.images.size(0); ++k)
    write_image((fs::path(out_dir) / "reconstructed" / (in.names[static_cast<size_t>(k)] + ext)).string(),
                inv.reconstructions[k]);
  const auto tiles = torch::stack({in.images, inv.reconstructions}, 1);  // [N, 2, C, H, W]
  write_image_grid((fs::path(out_dir) / ("grid" + ext)).string(), tiles.flatten(0, 1), 2);
  write_tensor_file((fs::path(out_dir) / "noise.pt").string(), inv.noise);
}

struct RoundTripStats {
  double psnr_mean = 0.0;
  double psnr_min = INFINITY;  // over the finite and infinite PSNRs; a NaN one is skipped
  double noise_mean = 0.0;
  double noise_std = 0.0;
};

RoundTripStats round_trip_stats(const Inversion& inv) {
  RoundTripStats s;
  for (int64_t k = 0; k < inv.psnr.size(0); ++k) s.psnr_min = std::min(s.psnr_min, inv.psnr[k].item<double>());
  s.psnr_mean = finite_mean(inv.psnr);
  s.noise_mean = inv.noise.mean().item<double>();
  s.noise_std = inv.noise.std().item<double>();
  return s;
}

// One entry per image: its name, round-trip PSNR and, for a class-conditional model given
// labels, its class.
nlohmann::json image_records(const Inputs& in, const Inversion& inv, const std::vector<int64_t>& labels,
                             int64_t classes) {
  nlohmann::json images = nlohmann::json::array();
  for (int64_t k = 0; k < in.images.size(0); ++k) {
    nlohmann::json image{{"name", in.names[static_cast<size_t>(k)]}, {"psnr", json_number(inv.psnr[k].item<double>())}};
    if (classes > 0 && !labels.empty()) image["class"] = labels[static_cast<size_t>(k) % labels.size()];
    images.push_back(image);
  }
  return images;
}

void write_invert_json(const InvertRequest& r, const LoadedModel& model, const Inputs& in, const Inversion& inv,
                       const RoundTripStats& s, double seconds) {
  const InvertOptions& o = r.options;
  const int64_t classes = model.config.model.num_classes;
  const nlohmann::json record{
      {"checkpoint", fs::absolute(r.checkpoint).string()},
      {"checkpoint_step", model.step},
      {"weights", model.using_ema ? "ema" : "raw"},
      {"input", r.input},
      {"sampler", o.sampler},
      {"steps", o.steps},
      {"spacing", enum_name(o.spacing, kTimestepSpacingNames)},
      {"cfg", o.cfg},
      {"labels", o.labels.empty() && classes > 0 ? "null class" : o.labels.empty() ? "unconditional" : "given"},
      {"inversion_sigmas", inv.sigmas},
      {"images", image_records(in, inv, o.labels, classes)},
      {"psnr_mean", json_number(s.psnr_mean)},
      {"psnr_min", json_number(s.psnr_min)},
      {"noise_mean", s.noise_mean},
      {"noise_std", s.noise_std},
      {"seconds", std::round(seconds * 1000) / 1000},
  };
  write_text_file_atomic((fs::path(r.out_dir) / "invert.json").string(),
                         record.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

}  // namespace

int run_invert(const std::vector<std::string>& argv) {
  const std::string ode_samplers = ode_sampler_names();
  Args args("invert",
            "DDIM inversion: run each image up the model's probability-flow ODE to its noise, then\n"
            "sample it back with the same solver and grid. Writes OUT/noise.pt (the unit noise\n"
            "ε with x(σ_max) = σ_max ε that sampling starts from, [N, C, H, W]),\n"
            "OUT/reconstructed/NAME.png, OUT/grid.png (one row per image: input | reconstruction)\n"
            "and OUT/invert.json (the σ path, per-image PSNR of the round trip, noise statistics).",
            invert_flags(ode_samplers));
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  apply_thread_flag(args);
  InvertRequest r = read_invert_request(args, ode_samplers);
  const InvertOptions& o = r.options;

  const auto device = resolve_device(args.get("--device", "auto"), "--device");
  if (device.is_cpu()) warn_if_reference_blas();
  LoadedModel model = load_model_for_inference(r.checkpoint, !args.has("--no-ema"), device);
  fit_request_to_model(r, model);
  const int64_t channels = model.config.model.in_channels, size = model.config.model.image_size;

  const Inputs in = load_inputs(r.input, {channels, size, size}, args.has("--resize"));
  const int64_t n = in.images.size(0);
  spdlog::info("inverting {} image(s) with {} ({} steps each way) with {} (step {}, {} weights) on {}", n,
               o.sampler, o.steps, r.checkpoint, model.step, model.using_ema ? "EMA" : "raw", device.str());
  const auto start = std::chrono::steady_clock::now();
  const Inversion inv = invert_images(model.precond, in.images, o,
                                      decile_sampler_progress("inversion and reconstruction"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  write_invert_tensors(r.out_dir, in, inv, channels);
  const RoundTripStats s = round_trip_stats(inv);
  write_invert_json(r, model, in, inv, s, seconds);
  spdlog::info("round trip of {} image(s): PSNR mean {} dB, min {} dB; noise mean {}, std {} (unit noise: 0, 1); "
               "{:.2f} s; wrote {}", n, format_double(std::round(s.psnr_mean * 100) / 100),
               format_double(std::round(s.psnr_min * 100) / 100),
               format_double(std::round(s.noise_mean * 1000) / 1000), format_double(std::round(s.noise_std * 1000) / 1000),
               seconds, r.out_dir);
  return 0;
}

}  // namespace diffuse::cli
