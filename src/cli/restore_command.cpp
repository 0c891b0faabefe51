// `diffuse restore`: degrade clean images with a task's operator and noise (or take a real
// measurement), restore them with DPS (Chung et al. 2023, Algorithm 1; inverse/dps.h), and
// write the restored images, the measurements, a comparison grid, metrics.json and
// restore.yaml.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include "args.h"
#include "diffuse/core/atomic_file.h"
#include "diffuse/core/blas_info.h"
#include "diffuse/core/compat.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/device.h"
#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/data/data_loader.h"
#include "diffuse/data/dataset_slice.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/inverse/dps.h"
#include "diffuse/inverse/measurement_noise.h"
#include "diffuse/inverse/metrics.h"
#include "diffuse/inverse/restore.h"
#include "diffuse/inverse/restore_task.h"
#include "diffuse/io/image_io.h"
#include "diffuse/sampling/generation_policy.h"
#include "input_images.h"
#include "metric_json.h"

namespace diffuse::cli {
namespace fs = std::filesystem;
namespace {

// --seeds: one seed per image, or a single first seed (image k gets seed + k).
std::vector<uint64_t> image_seeds(const std::string& text, int64_t count) {
  auto seeds = parse_seed_list(text, "--seeds");
  if (seeds.size() == 1) {
    const uint64_t first = seeds.front();
    seeds.clear();
    for (int64_t k = 0; k < count; ++k) seeds.push_back(first + static_cast<uint64_t>(k));
  }
  if (static_cast<int64_t>(seeds.size()) != count)
    throw UsageError("--seeds: give one seed per input image (" + std::to_string(count) + ") or a single first seed, found " +
                     std::to_string(seeds.size()) + " seeds");
  return seeds;
}

std::string metrics_json(const std::vector<std::string>& names, const RestoreQuality& restored, const RestoreQuality& naive,
                         const std::string& naive_name, double seconds_per_image, int64_t peak_memory) {
  const auto at = [](const torch::Tensor& t, int64_t k) {
    return t.defined() ? json_number(t[k].item<double>()) : nlohmann::json();
  };
  const auto mean = [](const torch::Tensor& t) { return t.defined() ? json_number(finite_mean(t)) : nlohmann::json(); };
  nlohmann::json images = nlohmann::json::array();
  for (size_t k = 0; k < names.size(); ++k) {
    const auto i = static_cast<int64_t>(k);
    images.push_back({{"name", names[k]},
                      {"psnr", at(restored.psnr, i)},
                      {"ssim", at(restored.ssim, i)},
                      {"naive_psnr", at(naive.psnr, i)},
                      {"naive_ssim", at(naive.ssim, i)}});
  }
  const nlohmann::json metrics{
      {"images", images},
      {"mean",
       {{"psnr", mean(restored.psnr)},
        {"ssim", mean(restored.ssim)},
        {"naive_psnr", mean(naive.psnr)},
        {"naive_ssim", mean(naive.ssim)}}},
      {"naive", naive_name},
      {"seconds_per_image", json_number(seconds_per_image)},
      {"peak_memory_bytes", peak_memory >= 0 ? nlohmann::json(peak_memory) : nlohmann::json()}};
  // File names need not be UTF-8; such bytes become U+FFFD rather than an exception.
  return metrics.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

struct RestoreInputs {
  std::vector<std::string> names;
  RestoreRequest request;
};

// Everything is read and checked before anything is written.
RestoreInputs read_restore_inputs(const Args& args, const RestoreTask& task, const ModelOptions& model) {
  RestoreInputs in;
  in.request.task = task;
  const bool resize = args.has("--resize");
  if (args.has("--measurement")) {
    const std::string path = args.get("--measurement");
    const auto op = make_operator(task.op, model.in_channels, model.image_size);
    in.request.measurement =
        read_conformed(path, op->measurement_shape(), resize, ("a '" + op->name() + "' measurement").c_str()).unsqueeze(0);
    in.names.push_back(fs::path(path).stem().string());
  } else {
    Inputs images = load_inputs(args.get("--input"), {model.in_channels, model.image_size, model.image_size}, resize);
    in.names = std::move(images.names);
    in.request.clean = images.images;
  }
  in.request.seeds = image_seeds(args.get("--seeds", "0"), static_cast<int64_t>(in.names.size()));
  in.request.batch_size = args.get_int("--batch-size", 16, 1, 65536);
  return in;
}

void warn_about_untrained_null_class(const RestoreTask& task, const ExperimentConfig& config) {
  if (task.class_label < 0 && config.model.num_classes > 0 && !guidance_trained(config))
    spdlog::warn("class -1 with a class-conditional model trained without label dropout "
                 "(diffusion.p_uncond = 0): the null-label branch is untrained; set class in the task");
}

void write_restore_images(const fs::path& out_dir, const std::vector<std::string>& names, const RestoreResult& result,
                          const torch::Tensor& clean) {
  fs::create_directories(out_dir / "restored");
  fs::create_directories(out_dir / "measurement");
  const int64_t size = result.restored.size(-1);
  const std::string ext = image_extension(result.restored.size(1));
  for (size_t k = 0; k < names.size(); ++k) {
    const auto i = static_cast<int64_t>(k);
    write_image((out_dir / "restored" / (names[k] + ext)).string(), result.restored[i]);
    write_image((out_dir / "measurement" / (names[k] + ext)).string(), result.measurement[i]);
  }
  const auto shown = display_measurement(result.measurement, size);
  const auto tiles = clean.defined() ? torch::stack({clean, shown, result.restored}, 1)  // [N, 3, C, H, W]
                                     : torch::stack({shown, result.restored}, 1);        // [N, 2, C, H, W]
  write_image_grid((out_dir / ("grid" + ext)).string(), tiles.flatten(0, 1), tiles.size(1));
}

YAML::Node restore_record(const Args& args, const LoadedModel& model, const RestoreInputs& in,
                          const RestoreResult& result, const torch::Device& device, double seconds) {
  YAML::Node record;
  record["checkpoint"] = fs::absolute(args.get("--checkpoint")).string();
  record["checkpoint_step"] = model.step;
  record["weights"] = model.using_ema ? "ema" : "raw";
  record["task_file"] = fs::absolute(args.get("--task")).string();
  record["task"] = emit_restore_task(in.request.task);
  if (args.has("--measurement")) record["measurement"] = args.get("--measurement");
  else record["input"] = args.get("--input");
  record["images"] = static_cast<int64_t>(in.names.size());
  record["seeds"] = args.get("--seeds", "0");
  record["batch_size"] = in.request.batch_size;
  record["resize"] = args.has("--resize");
  record["device"] = device.str();
  record["nfe_per_image"] = result.nfe_per_image;
  emit_value(record, "seconds", std::round(seconds * 1000) / 1000);
  return record;
}

Args restore_args() {
  return Args("restore",
            "Solve an inverse problem with Diffusion Posterior Sampling (Chung et al. 2023).\n"
            "Clean inputs (--input) are degraded by the task's operator and measurement noise\n"
            "(seeded per image), then restored; --measurement restores a real degraded image\n"
            "(no ground truth, so no metrics). Writes OUT/restored/NAME.png, OUT/measurement/NAME.png,\n"
            "OUT/grid.png with one row per image and the columns clean | measurement | restored\n"
            "(measurement | restored with --measurement; super-resolution measurements shown\n"
            "upsampled), OUT/metrics.json (PSNR and SSIM of the restored images and of the naive\n"
            "estimate against the clean ones) and OUT/restore.yaml (the resolved task and flags).\n"
            "Task files: configs/restore/*.yaml; keys operator.*, noise.*, method, zeta,\n"
            "normalize_zeta, clip_denoised, steps, spacing, class, cfg (override with --set zeta=0.3).",
            {
                {"--checkpoint", "CKPT", "checkpoint written by diffuse train"},
                {"--task", "YAML", "restore task, e.g. configs/restore/inpaint_box.yaml"},
                {"--input", "X", "clean image file, folder of images, or dataset slice (fashion:test[0:64])"},
                {"--measurement", "Y", "a degraded image to restore instead of --input (its shape is the operator's output)"},
                {"--out", "DIR", "output folder"},
                {"--seeds", "LIST", "one seed per image (measurement and sampling noise), or a first seed (default 0)"},
                {"--set", "KEY=VALUE", "override a task key, e.g. zeta=0.3 or operator.box_size=10", true},
                {"--batch-size", "B", "images restored together, 1-65536 (default 16)"},
                {"--no-ema", "", "use the raw weights instead of the EMA weights"},
                {"--resize", "", "convert inputs of another size or channel count to the model's"},
                thread_flag(),
            });
}

}  // namespace

int run_restore(const std::vector<std::string>& argv) {
  Args args = restore_args();
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  apply_thread_flag(args);
  const std::string checkpoint = args.require("--checkpoint");
  const std::string task_path = args.require("--task");
  const fs::path out_dir = args.require("--out");
  if (args.has("--input") == args.has("--measurement"))
    throw UsageError("give exactly one of --input (clean images to degrade) and --measurement (a degraded image)");
  const RestoreTask task = load_restore_task(task_path, args.all("--set"));
  const auto device = resolve_device(args.get("--device", "auto"), "--device");
  if (device.is_cpu()) warn_if_reference_blas();
  LoadedModel model = load_model_for_inference(checkpoint, !args.has("--no-ema"), device);
  warn_about_untrained_null_class(task, model.config);
  const RestoreInputs in = read_restore_inputs(args, task, model.config.model);
  const int64_t n = static_cast<int64_t>(in.names.size());
  spdlog::info("restoring {} image(s) with {} ({}, {} steps, zeta {}{}) from {} (step {}, {} weights) on {}", n,
               task.op.name, enum_name(task.dps.method, kDpsMethodNames), task.steps, format_double(task.dps.zeta),
               task.dps.normalize_zeta ? " normalised" : "", checkpoint, model.step,
               model.using_ema ? "EMA" : "raw", device.str());

  const auto start = std::chrono::steady_clock::now();
  const RestoreResult result = restore(model.precond, in.request, decile_sampler_progress("restoring"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t peak_memory = compat::peak_memory_bytes(device);

  write_restore_images(out_dir, in.names, result, in.request.clean);
  if (result.has_quality) {
    if (!result.quality.ssim.defined()) spdlog::warn("images under 11×11 pixels: SSIM not computed");
    write_text_file_atomic((out_dir / "metrics.json").string(),
                           metrics_json(in.names, result.quality, result.naive_quality, result.naive_name,
                                        seconds / static_cast<double>(n), peak_memory));
    spdlog::info("mean PSNR {} dB restored vs {} dB naive", format_double(std::round(finite_mean(result.quality.psnr) * 100) / 100),
                 format_double(std::round(finite_mean(result.naive_quality.psnr) * 100) / 100));
  }
  write_text_file_atomic((out_dir / "restore.yaml").string(),
                         to_yaml_string(restore_record(args, model, in, result, device, seconds)));
  spdlog::info("wrote {} restored image(s) to {} in {:.2f} s ({:.2f} s/image)", n, out_dir.string(), seconds,
               seconds / static_cast<double>(n));
  return 0;
}

}  // namespace diffuse::cli
