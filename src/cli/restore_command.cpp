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
#include "input_images.h"
#include "metric_json.h"
#include "diffuse/core/blas_info.h"
#include "diffuse/core/compat.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/data/data_loader.h"
#include "diffuse/data/dataset_slice.h"
#include "diffuse/inverse/dps.h"
#include "diffuse/inverse/measurement_noise.h"
#include "diffuse/inverse/metrics.h"
#include "diffuse/inverse/restore_task.h"
#include "diffuse/io/image_io.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "diffuse/train/checkpoint.h"

namespace diffuse::cli {
namespace fs = std::filesystem;
namespace {

// Measurement noise and the sampler's noise use different streams of the same seed, so the
// degradation of image k never correlates with its restoration noise.
constexpr uint64_t kMeasurementStream = 0x6d6561737572656dULL;  // "measurem"

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

// The naive estimate that DPS must beat: the measurement itself when it lives on the image
// grid (inpainting, blur, denoising), bilinear upsampling of y for super-resolution.
torch::Tensor naive_estimate(const torch::Tensor& y, int64_t image_size) {
  if (y.size(-1) == image_size) return y;
  namespace F = torch::nn::functional;
  return F::interpolate(y, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{image_size, image_size})
                               .mode(torch::kBilinear)
                               .align_corners(false));
}

// A measurement shown on the image grid (nearest upsampling for super-resolution).
torch::Tensor display_measurement(const torch::Tensor& y, int64_t image_size) {
  const int64_t factor = image_size / y.size(-1);
  return factor == 1 ? y : y.repeat_interleave(factor, 2).repeat_interleave(factor, 3);
}

struct Quality {
  torch::Tensor psnr, ssim;  // [N] float64; ssim undefined for images under 11 px
};

Quality measure(const torch::Tensor& image, const torch::Tensor& clean) {
  Quality q{psnr(image, clean), torch::Tensor()};
  if (clean.size(2) >= 11 && clean.size(3) >= 11) q.ssim = ssim(image, clean);
  return q;
}

std::string metrics_json(const std::vector<std::string>& names, const Quality& restored, const Quality& naive,
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

// The guided denoiser for a task's class/cfg settings (DESIGN §2: CFG is a wrapper).
DenoiserFn task_denoiser(LoadedModel& model, const RestoreTask& task, int64_t batch, torch::Device device) {
  const int64_t classes = model.config.model.num_classes;
  if (classes <= 0) {
    if (task.class_label >= 0)
      throw ConfigError("task class " + std::to_string(task.class_label) +
                        ": the model is unconditional; leave class at -1");
    return make_denoiser(model.precond, torch::Tensor());
  }
  if (task.class_label >= classes)
    throw ConfigError("task class " + std::to_string(task.class_label) + " is out of range: the model has " +
                      std::to_string(classes) + " classes (0-" + std::to_string(classes - 1) + ")");
  if (task.class_label < 0) {
    // Unconditional restoration with a conditional model uses its null-label branch.
    if (model.config.diffusion.p_uncond <= 0.0)
      spdlog::warn("class -1 with a class-conditional model trained without label dropout "
                   "(diffusion.p_uncond = 0): the null-label branch is untrained; set class in the task");
    const auto labels = torch::full({batch}, model.precond->net().null_label(), torch::dtype(torch::kLong).device(device));
    return make_denoiser(model.precond, labels);
  }
  const auto labels = torch::full({batch}, task.class_label, torch::dtype(torch::kLong).device(device));
  return task.cfg == 1.0 ? make_denoiser(model.precond, labels)
                         : make_cfg_denoiser(model.precond, labels, task.cfg);
}

}  // namespace

int run_restore(const std::vector<std::string>& argv) {
  Args args("restore",
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
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  apply_thread_flag(args);
  const std::string checkpoint = args.require("--checkpoint");
  const std::string task_path = args.require("--task");
  const std::string out_dir = args.require("--out");
  if (args.has("--input") == args.has("--measurement"))
    throw UsageError("give exactly one of --input (clean images to degrade) and --measurement (a degraded image)");
  const bool real_measurement = args.has("--measurement");
  const bool resize = args.has("--resize");
  const int64_t batch_size = args.get_int("--batch-size", 16, 1, 65536);

  const RestoreTask task = load_restore_task(task_path, args.all("--set"));
  const auto device = resolve_device(args.get("--device", "auto"), "--device");
  if (device.is_cpu()) warn_if_reference_blas();
  LoadedModel model = load_model_for_inference(checkpoint, !args.has("--no-ema"), device);
  // Gradients are taken with respect to x only; the weights stay fixed.
  for (auto& p : model.precond->parameters()) p.set_requires_grad(false);
  const int64_t channels = model.config.model.in_channels, size = model.config.model.image_size;
  const auto op = make_operator(task.op, channels, size);
  const std::vector<int64_t> image_shape{channels, size, size};

  // Everything is read and checked before anything is written.
  std::vector<std::string> names;
  torch::Tensor clean, y;
  if (real_measurement) {
    const std::string path = args.get("--measurement");
    y = read_conformed(path, op->measurement_shape(), resize, ("a '" + op->name() + "' measurement").c_str())
            .unsqueeze(0);
    // Pixels the mask removes carry no information; zero them as the operator's own output does,
    // so they do not inflate ‖y - A(x̂0)‖.
    if (const auto* mask = dynamic_cast<const MaskOperator*>(op.get())) y = y * mask->mask().to(y.options());
    names.push_back(fs::path(path).stem().string());
  } else {
    Inputs in = load_inputs(args.get("--input"), image_shape, resize);
    names = std::move(in.names);
    clean = in.images;
  }
  const int64_t n = static_cast<int64_t>(names.size());
  const auto seeds = image_seeds(args.get("--seeds", "0"), n);
  if (!real_measurement) {
    std::vector<uint64_t> measurement_seeds;
    for (uint64_t s : seeds) measurement_seeds.push_back(splitmix64(s ^ kMeasurementStream));
    SeededNoise measurement_noise(measurement_seeds, torch::kCPU);
    torch::NoGradGuard no_grad;
    y = add_measurement_noise(op->forward(clean), task.noise, measurement_noise);
  }

  const auto sigmas = sampling_sigmas(model.precond->schedule(), task.steps, task.spacing);
  const int64_t steps = static_cast<int64_t>(sigmas.size()) - 1;
  spdlog::info("restoring {} image(s) with {} ({}, {} steps, zeta {}{}) from {} (step {}, {} weights) on {}", n,
               op->name(), enum_name(task.dps.method, kDpsMethodNames), steps, format_double(task.dps.zeta),
               task.dps.normalize_zeta ? " normalised" : "", checkpoint, model.step,
               model.using_ema ? "EMA" : "raw", device.str());

  const auto start = std::chrono::steady_clock::now();
  std::vector<torch::Tensor> outputs;
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    const int64_t end = std::min(n, begin + batch_size);
    SeededNoise noise(std::vector<uint64_t>(seeds.begin() + begin, seeds.begin() + end), device);
    const auto denoiser = task_denoiser(model, task, end - begin, device);
    auto x = noise.randn(image_shape) * sigmas.front();
    int64_t last_decile = -1;
    auto progress = [&](int64_t done, int64_t total) {
      const int64_t decile = done * 10 / std::max<int64_t>(total, 1);
      if (decile == last_decile) return;
      last_decile = decile;
      spdlog::info("images {}-{} of {}: step {}/{}", begin + 1, end, n, done, total);
    };
    const auto restored =
        sample_dps(denoiser, *op, y.slice(0, begin, end).to(device), x, sigmas, noise, task.dps, progress);
    outputs.push_back(restored.to(torch::kCPU, torch::kFloat32));
  }
  const auto restored = torch::cat(outputs);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t peak_memory = compat::peak_memory_bytes(device);

  fs::create_directories(fs::path(out_dir) / "restored");
  fs::create_directories(fs::path(out_dir) / "measurement");
  const std::string ext = image_extension(channels);
  for (int64_t k = 0; k < n; ++k) {
    const std::string file = names[static_cast<size_t>(k)] + ext;
    write_image((fs::path(out_dir) / "restored" / file).string(), restored[k]);
    write_image((fs::path(out_dir) / "measurement" / file).string(), y[k]);
  }
  const auto shown = display_measurement(y, size);
  const auto tiles = real_measurement ? torch::stack({shown, restored}, 1)            // [N, 2, C, H, W]
                                      : torch::stack({clean, shown, restored}, 1);    // [N, 3, C, H, W]
  write_image_grid((fs::path(out_dir) / ("grid" + ext)).string(), tiles.flatten(0, 1), tiles.size(1));

  if (!real_measurement) {
    const bool upsampled = y.size(-1) != size;
    const Quality restored_quality = measure(restored, clean);
    const Quality naive_quality = measure(naive_estimate(y, size), clean);
    if (!restored_quality.ssim.defined()) spdlog::warn("images under 11×11 pixels: SSIM not computed");
    write_text_file_atomic((fs::path(out_dir) / "metrics.json").string(),
                           metrics_json(names, restored_quality, naive_quality,
                                        upsampled ? "bilinear-upsampled measurement" : "measurement",
                                        seconds / static_cast<double>(n), peak_memory));
    spdlog::info("mean PSNR {} dB restored vs {} dB naive", format_double(std::round(finite_mean(restored_quality.psnr) * 100) / 100),
                 format_double(std::round(finite_mean(naive_quality.psnr) * 100) / 100));
  }

  YAML::Node record;
  record["checkpoint"] = fs::absolute(checkpoint).string();
  record["checkpoint_step"] = model.step;
  record["weights"] = model.using_ema ? "ema" : "raw";
  record["task_file"] = fs::absolute(task_path).string();
  record["task"] = emit_restore_task(task);
  if (real_measurement) record["measurement"] = args.get("--measurement");
  else record["input"] = args.get("--input");
  record["images"] = n;
  record["seeds"] = args.get("--seeds", "0");
  record["batch_size"] = batch_size;
  record["resize"] = resize;
  record["device"] = device.str();
  record["nfe_per_image"] = steps;
  emit_value(record, "seconds", std::round(seconds * 1000) / 1000);
  write_text_file_atomic((fs::path(out_dir) / "restore.yaml").string(), to_yaml_string(record));
  spdlog::info("wrote {} restored image(s) to {} in {:.2f} s ({:.2f} s/image)", n, out_dir, seconds,
               seconds / static_cast<double>(n));
  return 0;
}

}  // namespace diffuse::cli
