#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "args.h"
#include "diffuse/core/atomic_file.h"
#include "diffuse/core/blas_info.h"
#include "diffuse/core/compat.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/device.h"
#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/distributed/sharded_generation.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/interop/weight_import.h"
#include "diffuse/io/image_io.h"
#include "diffuse/io/tensor_file.h"
#include "diffuse/models/autoencoder_kl.h"
#include "diffuse/sampling/generate.h"
#include "diffuse/sampling/generation_policy.h"
#include "diffuse/train/classifier_trainer.h"
#include "distributed_launch.h"

namespace diffuse::cli {
namespace fs = std::filesystem;
namespace {

std::vector<FlagSpec> sample_flags() {
  return with_distributed_flags({
                {"--checkpoint", "CKPT", "checkpoint written by diffuse train"},
                {"--sampler", "NAME", "one of: " + sampler_names() + " (default dpmpp2m)"},
                {"--steps", "N", "sampling steps, 1-10000 (default 20; ddpm always walks all T steps)"},
                {"--spacing", "NAME", "leading | trailing | linspace (VP grids) | karras | geometric | linear_t (default: trailing for VP models, else the schedule's own)"},
                {"--eta", "E", "DDIM / euler_a stochasticity in [0, 1] (0 deterministic, 1 ancestral)"},
                {"--s-churn", "S", "Heun churn S_churn in [0, 1000] (EDM Algorithm 2; default 0)"},
                {"--clip", "C", "clamp the x0 estimate to [-C, C], C in [0, 1000]; 0 disables (default 1 for image models, off for latents)"},
                {"--langevin-steps", "T", "langevin: steps per noise level, 1-100000 (default 100)"},
                {"--langevin-eps", "E", "langevin: step size ε of α_i = ε σ_i²/σ_L², in (0, 1] (default 2e-5)"},
                {"--predictor", "NAME", "pc: the predictor sampler (default sde_ve)"},
                {"--corrector-steps", "M", "pc: Langevin corrector steps after each predictor step, 0-1000 (default 1)"},
                {"--snr", "R", "pc: corrector signal-to-noise ratio r in (0, 100] (default 0.16)"},
                {"--cfg", "W", "classifier-free guidance weight in [0, 100] (default 1)"},
                {"--classifier", "CKPT", "classifier guidance with this noise-conditional classifier checkpoint"},
                {"--classifier-scale", "S", "classifier guidance scale s in [0, 1000] of D + s σ² ∇log p(y|x,σ) (default 1)"},
                {"--class", "K", "class label for every sample (0 to classes - 1)"},
                {"--classes", "LIST", "labels cycled over the samples, e.g. 0-9"},
                {"--seeds", "LIST", "one sample per seed, e.g. 0-63 or 1,5,9 (default 0-15)"},
                {"--batch-size", "B", "samples per network batch, 1-65536 (default 64)"},
                {"--out", "DIR", "output folder"},
                {"--grid-cols", "C", "grid columns, 1-1024 (default: the number of classes cycled, else √N)"},
                {"--format", "FMT", "png (default) or pt (also save OUT/samples.pt; latent models write only it)"},
                {"--vae", "FILE", "decode a latent model's samples to pictures with this VAE (diffuse import --from diffusers-vae)"},
                {"--no-ema", "", "use the raw weights instead of the EMA weights"},
                thread_flag(),
                {"--cuda-graph", "", "capture each batch's denoiser call in a CUDA graph and replay it (CUDA LibTorch 2.x)"},
  });
}

// A sampler's own options (SamplerEntry::own_options) as flags: --langevin-steps for langevin_steps.
std::string own_option_flag(const char* key) {
  std::string flag = std::string("--") + key;
  std::replace(flag.begin(), flag.end(), '_', '-');
  return flag;
}

// Each sampler's own flags are an error with another sampler (they would do nothing).
void check_own_option_flags(const Args& args, const std::string& sampler) {
  for (const auto& entry : sampler_table()) {
    if (!entry.own_options || sampler == entry.name) continue;
    for (const auto& option : entry.own_options(SamplerOptions{}))
      if (args.has(own_option_flag(option.key)))
        throw UsageError(own_option_flag(option.key) + " applies to --sampler " + entry.name + " only");
  }
}

SamplerOptions parse_sampler_flags(const Args& args, const SamplerEntry& entry) {
  SamplerOptions so;
  so.eta = args.get_double("--eta", entry.default_eta, 0.0, 1.0);
  so.s_churn = args.get_double("--s-churn", 0.0, 0.0, 1000.0);
  check_own_option_flags(args, entry.name);
  so.langevin_steps = static_cast<int>(args.get_int("--langevin-steps", so.langevin_steps, 1, 100000));
  so.langevin_eps = args.get_double("--langevin-eps", so.langevin_eps, 1e-12, 1.0);
  so.predictor = args.get("--predictor", so.predictor);
  if (args.has("--predictor") && !find_sampler(so.predictor).predicts)
    throw UsageError("--predictor " + so.predictor + " is not a predictor (pc and langevin are not)");
  so.corrector_steps = static_cast<int>(args.get_int("--corrector-steps", so.corrector_steps, 0, 1000));
  so.snr = args.get_double("--snr", so.snr, 1e-9, 100.0);
  return so;
}

GenerateOptions parse_generate_flags(const Args& args) {
  GenerateOptions g;
  g.sampler = args.get("--sampler", "dpmpp2m");
  const auto& entry = find_sampler(g.sampler);
  g.steps = static_cast<int>(args.get_int("--steps", 20, 1, 10000));
  g.spacing = timestep_spacing_from_name(args.get("--spacing", "trailing"));
  g.sampler_options = parse_sampler_flags(args, entry);
  if (args.has("--classifier-scale") && !args.has("--classifier"))
    throw UsageError("--classifier-scale needs --classifier");
  g.classifier_scale = args.get_double("--classifier-scale", 1.0, 0.0, 1000.0);
  g.cfg = args.get_double("--cfg", 1.0, 0.0, 100.0);
  g.seeds = parse_seed_list(args.get("--seeds", "0-15"), "--seeds");
  if (args.has("--class")) g.labels = {args.get_int("--class", 0, 0, 1'000'000)};
  if (args.has("--classes")) g.labels = parse_int_list(args.get("--classes"), "--classes");
  g.cuda_graph = args.has("--cuda-graph");
  g.batch_size = args.get_int("--batch-size", 64, 1, 65536);
  return g;
}

void attach_classifier(GenerateOptions& g, const std::string& path, bool ema, const torch::Device& device) {
  LoadedClassifier loaded = load_classifier(path, ema, device);
  g.classifier_classes = loaded.config.model.num_classes;
  NoisyClassifier classifier = loaded.classifier;
  g.classifier = [classifier](const torch::Tensor& x, const torch::Tensor& sigma) mutable {
    return classifier->forward(x, sigma);
  };
}

// The model's own defaults (generation_policy.h) where the flags leave a choice.
void apply_model_defaults(GenerateOptions& g, const Args& args, const LoadedModel& model,
                          const std::string& checkpoint, const torch::Device& device) {
  const auto& config = model.config;
  if (!model.precond->schedule().is_vp() && !args.has("--spacing")) g.spacing = model.precond->schedule().default_spacing();
  g.bf16 = device.is_cuda() && config.train.precision == Precision::bf16;
  g.sampler_options.clip_denoised = args.get_double("--clip", default_clip_denoised(config.data), 0.0, 1000.0);
  if (g.cfg != 1.0 && config.model.num_classes > 0 && !guidance_trained(config))
    throw ConfigError("--cfg " + format_double(g.cfg) + ": " + checkpoint +
                      " was trained without label dropout (diffusion.p_uncond 0), so its null class "
                      "is untrained; drop --cfg or train with diffusion.p_uncond > 0");
  const int64_t label_classes = config.model.num_classes > 0 ? config.model.num_classes : g.classifier_classes;
  if (label_classes > 0 && g.labels.empty())
    for (int64_t k = 0; k < label_classes; ++k) g.labels.push_back(k);
}

// Latents (e.g. 4 channels) are pictures only through a VAE; without one only their tensor is written.
AutoencoderKL load_matching_vae(const Args& args, const std::string& checkpoint, int64_t channels,
                                const torch::Device& device) {
  if (!args.has("--vae")) return AutoencoderKL{nullptr};
  auto vae = load_vae(args.get("--vae"), device);
  if (vae->options().latent_channels != channels)
    throw ConfigError("--vae " + args.get("--vae") + ": the VAE decodes " + std::to_string(vae->options().latent_channels) +
                      "-channel latents, but " + checkpoint + " generates " + std::to_string(channels) + " channels");
  return vae;
}

SamplerCallback decile_sampling_progress(int64_t n) {
  const auto start = std::chrono::steady_clock::now();
  auto last_decile = std::make_shared<int64_t>(-1);
  return [n, start, last_decile](const SamplerStep& step) {
    const int64_t decile = step.nfe_done * 10 / std::max<int64_t>(step.nfe_total, 1);
    if (decile == *last_decile) return;
    *last_decile = decile;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    spdlog::info("NFE {}/{} ({:.0f}%) | {:.1f} img/s", step.nfe_done, step.nfe_total,
                 100.0 * step.nfe_done / step.nfe_total,
                 n * (static_cast<double>(step.nfe_done) / step.nfe_total) / std::max(s, 1e-9));
  };
}

// One file per sample (seedS_classK) and the grid; returns the labels of the samples.
std::vector<int64_t> write_sample_images(const std::string& out_dir, const torch::Tensor& images,
                                         const GenerateOptions& g, int64_t grid_cols, bool pictures) {
  const bool labelled = !g.labels.empty();
  const int64_t n = static_cast<int64_t>(g.seeds.size());
  const std::string ext = image_extension(images.size(1));
  std::vector<int64_t> labels;
  for (int64_t k = 0; k < n; ++k) {
    std::string name = "seed" + std::to_string(g.seeds[static_cast<size_t>(k)]);
    if (labelled) {
      const int64_t label = g.labels[static_cast<size_t>(k) % g.labels.size()];
      labels.push_back(label);
      name += "_class" + std::to_string(label);
    }
    if (pictures) write_image((fs::path(out_dir) / (name + ext)).string(), images[k]);
  }
  if (pictures) {
    const auto cycle = labelled ? static_cast<int64_t>(g.labels.size()) : 0;
    const int64_t cols = grid_cols > 0 ? grid_cols : grid_columns(cycle, n);
    write_image_grid((fs::path(out_dir) / ("grid" + ext)).string(), images, cols);
  }
  return labels;
}

// OUT/sampling.yaml: what was sampled, how, and how fast.
YAML::Node sampling_record(const Args& args, const LoadedModel& model, const GenerateOptions& g,
                           const torch::Device& device, const Communicator& communicator,
                           const std::vector<int64_t>& labels, double seconds) {
  const auto& entry = find_sampler(g.sampler);
  YAML::Node record;
  record["checkpoint"] = fs::absolute(args.get("--checkpoint")).string();
  record["checkpoint_step"] = model.step;
  record["weights"] = model.using_ema ? "ema" : "raw";
  record["sampler"] = g.sampler;
  if (args.has("--vae")) record["vae"] = fs::absolute(args.get("--vae")).string();
  record["steps"] = g.steps;
  record["spacing"] = enum_name(g.spacing, kTimestepSpacingNames);
  emit_value(record, "eta", g.sampler_options.eta);
  emit_value(record, "s_churn", g.sampler_options.s_churn);
  if (g.sampler_options.clip_denoised > 0) emit_value(record, "clip", g.sampler_options.clip_denoised);
  emit_value(record, "cfg", g.cfg);
  if (entry.own_options)
    for (const auto& option : entry.own_options(g.sampler_options)) record[option.key] = option.value;
  if (args.has("--classifier")) {
    record["classifier"] = fs::absolute(args.get("--classifier")).string();
    emit_value(record, "classifier_scale", g.classifier_scale);
  }
  record["seeds"] = args.get("--seeds", "0-15");
  if (!labels.empty()) record["labels"] = labels;
  record["batch_size"] = g.batch_size;
  record["device"] = device.str();
  if (communicator.distributed()) record["ranks"] = communicator.world_size();
  record["nfe_per_batch"] = entry.nfe(static_cast<int64_t>(generation_sigmas(model.precond->schedule(), g).size()) - 1, g.sampler_options);
  const int64_t n = static_cast<int64_t>(g.seeds.size());
  emit_value(record, "seconds", std::round(seconds * 1000) / 1000);
  emit_value(record, "images_per_second", std::round(n / seconds * 100) / 100);
  record["peak_memory_mb"] = compat::peak_memory_bytes(device) / (1 << 20);
  return record;
}

}  // namespace

int run_sample(const std::vector<std::string>& argv) {
  Args args("sample",
            "Generate images from a checkpoint. Writes OUT/grid.png, one image per sample\n"
            "(seedS_classK), optionally OUT/samples.pt, and OUT/sampling.yaml.\n"
            "Guidance: --cfg W gives D_u + W (D_c - D_u): W = 1 is the plain conditional model,\n"
            "W = 0 the unconditional one. On several ranks the seeds' batches are shared out and\n"
            "rank 0 writes the outputs, the same images as one process makes.",
            sample_flags());
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  if (const auto code = launch_local_workers_if_asked(args, "sample", argv)) return *code;
  apply_thread_flag(args);
  const std::string checkpoint = args.require("--checkpoint");
  const std::string out_dir = args.require("--out");
  const std::string format = args.get("--format", "png");
  if (format != "png" && format != "pt") throw UsageError("--format: expected png or pt, found '" + format + "'");
  if (args.has("--class") && args.has("--classes")) throw UsageError("give --class or --classes, not both");
  GenerateOptions g = parse_generate_flags(args);
  const int64_t grid_cols = args.get_int("--grid-cols", 0, 1, 1024);

  const auto requested_device = resolve_device(args.get("--device", "auto"), "--device");
  const auto communicator = join_ranks(args, requested_device);
  const auto device = rank_device(requested_device, communicator->env());
  if (device.is_cpu()) warn_if_reference_blas();
  LoadedModel model = load_model_for_inference(checkpoint, !args.has("--no-ema"), device);
  if (args.has("--classifier")) attach_classifier(g, args.get("--classifier"), !args.has("--no-ema"), device);
  apply_model_defaults(g, args, model, checkpoint, device);
  const int64_t channels = model.config.model.in_channels;
  AutoencoderKL vae = load_matching_vae(args, checkpoint, channels, device);
  const bool pictures = channels == 1 || channels == 3 || vae;
  if (!pictures && format == "png")
    throw ConfigError("--format png: " + checkpoint + " generates " + std::to_string(channels) +
                      "-channel latents, which are not images (PNG holds 1 or 3 channels); use --format pt "
                      "to write OUT/samples.pt, or give --vae FILE to decode them");
  const int64_t n = static_cast<int64_t>(g.seeds.size());
  spdlog::info("sampling {} images with {} ({} steps) from {} (step {}, {} weights) on {}", n, g.sampler,
               g.steps, checkpoint, model.step, model.using_ema ? "EMA" : "raw", device.str());

  const auto start = std::chrono::steady_clock::now();
  auto images = generate_samples_across_ranks(model.precond, g, *communicator, decile_sampling_progress(n));
  if (!communicator->is_root()) return 0;
  const torch::Tensor latents = vae ? images : torch::Tensor();
  if (vae) images = decode_latents(vae, latents, g.batch_size, device);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  fs::create_directories(out_dir);
  const auto sample_labels = write_sample_images(out_dir, images, g, grid_cols, pictures);
  if (format == "pt") write_tensor_file((fs::path(out_dir) / "samples.pt").string(), vae ? latents : images);
  const auto record = sampling_record(args, model, g, device, *communicator, sample_labels, seconds);
  write_text_file_atomic((fs::path(out_dir) / "sampling.yaml").string(), to_yaml_string(record));
  spdlog::info("wrote {} images to {} in {:.2f} s ({:.1f} img/s)", n, out_dir, seconds, n / seconds);
  return 0;
}

}  // namespace diffuse::cli
