#include "diffuse/core/experiment_config.h"

#include <limits>

#include "diffuse/core/device.h"
#include "diffuse/sampling/sampler.h"

namespace diffuse {

namespace {

// Upper bounds that keep a typo from asking for terabytes: larger values are never meant.
constexpr int64_t kMaxImageSize = 4096;
constexpr int64_t kMaxChannels = 1024;
constexpr int64_t kMaxSteps = 1'000'000'000'000;
constexpr int64_t kMaxTimesteps = 100'000;
constexpr int64_t kMaxThreads = 1024;

void check_positive(ConfigNode& n, const std::string& key, double value, double hi) {
  if (!(value > 0 && value <= hi))
    n.fail(key, "must lie in (0, " + format_double(hi) + "], found " + format_double(value));
}

// 0 (a default taken elsewhere) or an integer in [lo, hi].
void check_zero_or_range(ConfigNode& n, const std::string& key, int64_t value, int64_t lo, int64_t hi,
                         const char* zero_means) {
  if (value != 0 && (value < lo || value > hi))
    n.fail(key, "must be 0 (" + std::string(zero_means) + ") or an integer in [" + std::to_string(lo) + ", " +
                    std::to_string(hi) + "], found " + std::to_string(value));
}

DataOptions parse_data(ConfigNode n) {
  DataOptions o;
  n.read_enum("type", o.type, kDatasetTypeNames);
  n.read("path", o.path);
  n.read("split", o.split);
  if (o.split != "train" && o.split != "test")
    n.fail("split", "unknown value '" + o.split + "'; valid values: train, test");
  n.read("resolution", o.resolution);
  check_zero_or_range(n, "resolution", o.resolution, 2, kMaxImageSize, "the native size");
  n.read("channels", o.channels);
  const bool pictures = o.type == DatasetType::idx || o.type == DatasetType::cifar10 ||
                        o.type == DatasetType::image_folder;
  if (pictures && o.channels != 0 && o.channels != 1 && o.channels != 3)
    n.fail("channels", "must be 0 (native), 1 or 3 for " + std::string(enum_name(o.type, kDatasetTypeNames)) +
                           " images, found " + std::to_string(o.channels));
  check_zero_or_range(n, "channels", o.channels, 1, kMaxChannels, "the native channels");
  n.read("hflip", o.hflip);
  if (o.hflip && o.type == DatasetType::couplings)
    n.fail("hflip", "would flip each sample but not the noise it is coupled to; set it false for couplings");
  n.read("allow_upscale", o.allow_upscale);
  n.read("skip_corrupt", o.skip_corrupt);
  n.read("limit", o.limit);
  n.check_int_range("limit", o.limit, 0, std::numeric_limits<int64_t>::max());
  n.read("num_workers", o.num_workers);
  n.check_int_range("num_workers", o.num_workers, 0, 64);
  n.read("prefetch_batches", o.prefetch_batches);
  n.check_int_range("prefetch_batches", o.prefetch_batches, 1, 1024);
  n.finish();
  return o;
}

YAML::Node emit_data(const DataOptions& o) {
  YAML::Node n;
  emit_enum(n, "type", o.type, kDatasetTypeNames);
  emit_value(n, "path", o.path);
  emit_value(n, "split", o.split);
  emit_value(n, "resolution", o.resolution);
  emit_value(n, "channels", o.channels);
  emit_value(n, "hflip", o.hflip);
  emit_value(n, "allow_upscale", o.allow_upscale);
  emit_value(n, "skip_corrupt", o.skip_corrupt);
  emit_value(n, "limit", o.limit);
  emit_value(n, "num_workers", o.num_workers);
  emit_value(n, "prefetch_batches", o.prefetch_batches);
  return n;
}

void parse_unet(ConfigNode n, UNetOptions& o) {
  n.read("base_channels", o.base_channels);
  n.check_int_range("base_channels", o.base_channels, 1, 4096);
  n.read("channel_mult", o.channel_mult);
  if (o.channel_mult.empty() || o.channel_mult.size() > 8)
    n.fail("channel_mult", "must list 1 to 8 multipliers, found " + std::to_string(o.channel_mult.size()));
  for (int m : o.channel_mult)
    if (m < 1 || m > 64) n.fail("channel_mult", "multipliers must lie in [1, 64], found " + std::to_string(m));
  n.read("num_res_blocks", o.num_res_blocks);
  n.check_int_range("num_res_blocks", o.num_res_blocks, 1, 64);
  n.read("attention_resolutions", o.attention_resolutions);
  for (int r : o.attention_resolutions)
    if (r < 1 || r > kMaxImageSize)
      n.fail("attention_resolutions", "sizes must lie in [1, " + std::to_string(kMaxImageSize) + "], found " +
                                          std::to_string(r));
  n.read("num_heads", o.num_heads);
  n.check_int_range("num_heads", o.num_heads, 1, 1024);
  n.read("head_channels", o.head_channels);
  if (o.head_channels != -1 && (o.head_channels < 1 || o.head_channels > 4096))
    n.fail("head_channels", "must be -1 (use num_heads) or an integer in [1, 4096], found " +
                                std::to_string(o.head_channels));
  n.read("dropout", o.dropout);
  n.check_range("dropout", o.dropout, 0.0, 0.99);
  n.read("num_groups", o.num_groups);
  n.check_int_range("num_groups", o.num_groups, 1, 1024);
  n.read("norm_eps", o.norm_eps);
  check_positive(n, "norm_eps", o.norm_eps, 0.1);
  n.read("scale_shift_norm", o.scale_shift_norm);
  n.read("middle_attention_norm", o.middle_attention_norm);
  n.read("resblock_updown", o.resblock_updown);
  n.read_enum("downsample_padding", o.downsample_padding, kDownsamplePaddingNames);
  if (o.resblock_updown && o.downsample_padding != DownsamplePadding::symmetric)
    n.fail("downsample_padding", "applies to conv downsampling, but resblock_updown true downsamples by average "
                                 "pooling; leave it symmetric or set resblock_updown false");
  n.finish();
}

YAML::Node emit_unet(const UNetOptions& o) {
  YAML::Node n;
  emit_value(n, "base_channels", o.base_channels);
  emit_value(n, "channel_mult", o.channel_mult);
  emit_value(n, "num_res_blocks", o.num_res_blocks);
  emit_value(n, "attention_resolutions", o.attention_resolutions);
  emit_value(n, "num_heads", o.num_heads);
  emit_value(n, "head_channels", o.head_channels);
  emit_value(n, "dropout", o.dropout);
  emit_value(n, "num_groups", o.num_groups);
  emit_value(n, "norm_eps", o.norm_eps);
  emit_value(n, "scale_shift_norm", o.scale_shift_norm);
  emit_value(n, "middle_attention_norm", o.middle_attention_norm);
  emit_value(n, "resblock_updown", o.resblock_updown);
  emit_enum(n, "downsample_padding", o.downsample_padding, kDownsamplePaddingNames);
  return n;
}

void parse_dit(ConfigNode n, DiTOptions& o) {
  n.read("depth", o.depth);
  n.check_int_range("depth", o.depth, 1, 1024);
  n.read("hidden_size", o.hidden_size);
  n.read("num_heads", o.num_heads);
  n.check_int_range("num_heads", o.num_heads, 1, 1024);
  n.check_int_range("hidden_size", o.hidden_size, 1, 16384);
  if (o.hidden_size % o.num_heads != 0)
    n.fail("hidden_size", "must be a positive multiple of num_heads (" +
                              std::to_string(o.num_heads) + "), found " +
                              std::to_string(o.hidden_size));
  n.read("patch_size", o.patch_size);
  n.check_int_range("patch_size", o.patch_size, 1, 64);
  n.read("mlp_ratio", o.mlp_ratio);
  check_positive(n, "mlp_ratio", o.mlp_ratio, 64.0);
  n.read("mlp_norm_eps", o.mlp_norm_eps);
  check_positive(n, "mlp_norm_eps", o.mlp_norm_eps, 0.1);
  n.finish();
}

YAML::Node emit_dit(const DiTOptions& o) {
  YAML::Node n;
  emit_value(n, "depth", o.depth);
  emit_value(n, "hidden_size", o.hidden_size);
  emit_value(n, "num_heads", o.num_heads);
  emit_value(n, "patch_size", o.patch_size);
  emit_value(n, "mlp_ratio", o.mlp_ratio);
  emit_value(n, "mlp_norm_eps", o.mlp_norm_eps);
  return n;
}

ModelOptions parse_model(ConfigNode n) {
  ModelOptions o;
  n.read_enum("arch", o.arch, kModelArchNames);
  n.read("preset", o.preset);
  if (!o.preset.empty()) {
    const ModelArch arch = o.arch;
    try {
      apply_model_preset(o.preset, o);
    } catch (const ConfigError& e) {
      n.fail("preset", e.what());
    }
    // A classifier is the encoder half of a UNet, so it takes the UNet presets.
    if (arch == ModelArch::classifier) {
      if (o.arch != ModelArch::unet) n.fail("preset", "a classifier takes a UNet preset, not '" + o.preset + "'");
      o.arch = ModelArch::classifier;
    } else if (n.has("arch") && o.arch != arch) {
      n.fail("preset", "'" + o.preset + "' is a " + enum_name(o.arch, kModelArchNames) +
                           " preset but model.arch is " + enum_name(arch, kModelArchNames) +
                           "; drop one of them or pick a " + enum_name(arch, kModelArchNames) + " preset");
    }
  }
  n.read("in_channels", o.in_channels);
  n.read("image_size", o.image_size);
  n.read("num_classes", o.num_classes);
  check_zero_or_range(n, "in_channels", o.in_channels, 1, kMaxChannels, "from the dataset");
  check_zero_or_range(n, "image_size", o.image_size, 2, kMaxImageSize, "from the dataset");
  if (o.num_classes < -1 || o.num_classes > 1'000'000)
    n.fail("num_classes", "must be -1 (from the dataset), 0 (unconditional) or a count up to 1000000, found " +
                              std::to_string(o.num_classes));
  n.read("learn_sigma", o.learn_sigma);
  if (o.learn_sigma && o.arch == ModelArch::classifier)
    n.fail("learn_sigma", "a classifier has no variance output");
  ConfigNode timestep = n.child("timestep");
  timestep.read_enum("order", o.timestep.order, kTimestepOrderNames);
  timestep.read("freq_shift", o.timestep.freq_shift);
  timestep.check_int_range("freq_shift", o.timestep.freq_shift, 0, 1);
  timestep.finish();
  parse_unet(n.child("unet"), o.unet);
  parse_dit(n.child("dit"), o.dit);
  n.finish();
  return o;
}

YAML::Node emit_model(const ModelOptions& o) {
  YAML::Node n;
  emit_enum(n, "arch", o.arch, kModelArchNames);
  emit_value(n, "preset", o.preset);
  emit_value(n, "in_channels", o.in_channels);
  emit_value(n, "image_size", o.image_size);
  emit_value(n, "num_classes", o.num_classes);
  emit_value(n, "learn_sigma", o.learn_sigma);
  YAML::Node timestep;
  emit_enum(timestep, "order", o.timestep.order, kTimestepOrderNames);
  emit_value(timestep, "freq_shift", o.timestep.freq_shift);
  n["timestep"] = timestep;
  if (o.arch == ModelArch::unet || o.arch == ModelArch::classifier) n["unet"] = emit_unet(o.unet);
  if (o.arch == ModelArch::dit) n["dit"] = emit_dit(o.dit);
  return n;
}

// The discrete VP grid: T and the β schedule.
void read_vp_grid(ConfigNode& n, DiffusionOptions& o) {
  n.read("timesteps", o.timesteps);
  n.check_int_range("timesteps", o.timesteps, 2, kMaxTimesteps);
  n.read("beta_start", o.beta_start);
  n.read("beta_end", o.beta_end);
  n.check_range("beta_start", o.beta_start, 1e-12, 0.999);
  n.check_range("beta_end", o.beta_end, o.beta_start, 0.999);
  n.read("cosine_s", o.cosine_s);
  n.check_range("cosine_s", o.cosine_s, 0.0, 1.0);
  n.read("max_beta", o.max_beta);
  n.check_range("max_beta", o.max_beta, 1e-6, 0.9999);
}

// Each schedule brings its own defaults (the published settings).
void apply_schedule_defaults(DiffusionOptions& o) {
  switch (o.schedule) {
    case ScheduleKind::vp_linear:
    case ScheduleKind::vp_cosine: break;
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

DiffusionOptions parse_diffusion(ConfigNode n) {
  DiffusionOptions o;
  n.read_enum("schedule", o.schedule, kScheduleKindNames);
  apply_schedule_defaults(o);
  read_vp_grid(n, o);
  n.read("sigma_min", o.sigma_min);
  check_positive(n, "sigma_min", o.sigma_min, 1e3);
  n.read("sigma_max", o.sigma_max);
  if (!(o.sigma_max > o.sigma_min && o.sigma_max <= 1e6))
    n.fail("sigma_max", "must lie in (sigma_min = " + format_double(o.sigma_min) + ", 1e6], found " +
                            format_double(o.sigma_max));
  n.read("sigma_data", o.sigma_data);
  check_positive(n, "sigma_data", o.sigma_data, 1e3);
  n.read("shift", o.shift);
  check_positive(n, "shift", o.shift, 1e3);
  if (o.shift != 1.0 && o.schedule != ScheduleKind::flow)
    n.fail("shift", "applies to schedule 'flow' only (SD3's resolution shift of t)");
  n.read_enum("prediction", o.prediction, kPredictionNames);
  n.read_enum("sigma_distribution", o.sigma_distribution, kSigmaDistributionNames);
  const bool vp = o.schedule == ScheduleKind::vp_linear || o.schedule == ScheduleKind::vp_cosine;
  if (o.sigma_distribution == SigmaDistribution::grid && !vp)
    n.fail("sigma_distribution", "'grid' draws the timesteps of a VP schedule; schedule '" +
                                     std::string(enum_name(o.schedule, kScheduleKindNames)) +
                                     "' has none (use log_normal or log_uniform)");
  if (o.sigma_distribution == SigmaDistribution::uniform_t && o.schedule != ScheduleKind::flow)
    n.fail("sigma_distribution", "'uniform_t' draws the flow time t; it needs schedule 'flow'");
  n.read_enum("weighting", o.weighting, kLossWeightingNames);
  n.read("min_snr_gamma", o.min_snr_gamma);
  check_positive(n, "min_snr_gamma", o.min_snr_gamma, 1e6);
  n.read("p_mean", o.p_mean);
  n.check_range("p_mean", o.p_mean, -20.0, 20.0);
  n.read("p_std", o.p_std);
  check_positive(n, "p_std", o.p_std, 20.0);
  n.read("p_uncond", o.p_uncond);
  n.check_range("p_uncond", o.p_uncond, 0.0, 1.0);
  n.read("vlb_weight", o.vlb_weight);
  n.check_range("vlb_weight", o.vlb_weight, 0.0, 1e6);
  n.finish();
  return o;
}

YAML::Node emit_diffusion(const DiffusionOptions& o) {
  YAML::Node n;
  emit_enum(n, "schedule", o.schedule, kScheduleKindNames);
  emit_value(n, "timesteps", o.timesteps);
  emit_value(n, "beta_start", o.beta_start);
  emit_value(n, "beta_end", o.beta_end);
  emit_value(n, "cosine_s", o.cosine_s);
  emit_value(n, "max_beta", o.max_beta);
  emit_value(n, "sigma_min", o.sigma_min);
  emit_value(n, "sigma_max", o.sigma_max);
  emit_value(n, "sigma_data", o.sigma_data);
  emit_value(n, "shift", o.shift);
  emit_enum(n, "prediction", o.prediction, kPredictionNames);
  emit_enum(n, "sigma_distribution", o.sigma_distribution, kSigmaDistributionNames);
  emit_enum(n, "weighting", o.weighting, kLossWeightingNames);
  emit_value(n, "min_snr_gamma", o.min_snr_gamma);
  emit_value(n, "p_mean", o.p_mean);
  emit_value(n, "p_std", o.p_std);
  emit_value(n, "p_uncond", o.p_uncond);
  emit_value(n, "vlb_weight", o.vlb_weight);
  return n;
}

ClassifierOptions parse_classifier(ConfigNode n) {
  ClassifierOptions o;
  n.read_enum("noise", o.noise, kClassifierNoiseNames);
  n.read("eval_sigmas", o.eval_sigmas);
  if (o.eval_sigmas.size() > 64)
    n.fail("eval_sigmas", "must list at most 64 noise levels, found " + std::to_string(o.eval_sigmas.size()));
  for (double s : o.eval_sigmas)
    if (!(s >= 0 && s <= 1e6)) n.fail("eval_sigmas", "σ values must lie in [0, 1e6], found " + format_double(s));
  n.read("eval_batches", o.eval_batches);
  n.check_int_range("eval_batches", o.eval_batches, 0, kMaxSteps);
  n.finish();
  return o;
}

YAML::Node emit_classifier(const ClassifierOptions& o) {
  YAML::Node n;
  emit_enum(n, "noise", o.noise, kClassifierNoiseNames);
  emit_value(n, "eval_sigmas", o.eval_sigmas);
  emit_value(n, "eval_batches", o.eval_batches);
  return n;
}

// A `sampler` key (train.sample, train.eval): a name of the sampler table.
void read_sampler_name(ConfigNode& node, std::string& sampler) {
  node.read("sampler", sampler);
  try {
    find_sampler(sampler);
  } catch (const ConfigError& e) {
    node.fail("sampler", e.what());
  }
}

// train.sample: the periodic sample grids.
void read_train_sample(ConfigNode s, TrainSampleOptions& o) {
  read_sampler_name(s, o.sampler);
  s.read("steps", o.steps);
  s.check_int_range("steps", o.steps, 1, 10000);
  s.read("count", o.count);
  s.check_int_range("count", o.count, 1, 1024);
  s.read("cfg", o.cfg);
  s.check_range("cfg", o.cfg, 0.0, 100.0);
  s.finish();
}

// train.eval: in-training evaluation (needs a feature network when train.eval_every > 0).
void read_train_eval(ConfigNode e, TrainOptions& o) {
  e.read("samples", o.eval.samples);
  e.check_int_range("samples", o.eval.samples, 4, 1'000'000);
  read_sampler_name(e, o.eval.sampler);
  e.read("steps", o.eval.steps);
  e.check_int_range("steps", o.eval.steps, 1, 10000);
  e.read("cfg", o.eval.cfg);
  e.check_range("cfg", o.eval.cfg, 0.0, 100.0);
  e.read("features", o.eval.features);
  e.read("ref", o.eval.ref);
  if (o.eval_every > 0 && o.eval.features.empty())
    e.fail("features", "train.eval_every " + std::to_string(o.eval_every) +
                           " needs a feature network: a classifier checkpoint (configs/fashion_features.yaml) or "
                           "torchscript:PATH");
  e.finish();
}

// The optimiser and its learning-rate schedule.
void read_optimizer(ConfigNode& n, TrainOptions& o) {
  n.read("lr", o.lr);
  check_positive(n, "lr", o.lr, 10.0);
  n.read("betas", o.betas);
  if (o.betas.size() != 2 || o.betas[0] < 0 || o.betas[0] >= 1 || o.betas[1] < 0 || o.betas[1] >= 1)
    n.fail("betas", "expected two numbers in [0, 1), e.g. [0.9, 0.999]");
  n.read("weight_decay", o.weight_decay);
  n.check_range("weight_decay", o.weight_decay, 0.0, 10.0);
  n.read("adam_eps", o.adam_eps);
  check_positive(n, "adam_eps", o.adam_eps, 1.0);
  n.read("warmup_steps", o.warmup_steps);
  n.check_int_range("warmup_steps", o.warmup_steps, 0, kMaxSteps);
  n.read_enum("lr_schedule", o.lr_schedule, kLrScheduleNames);
  n.read("min_lr", o.min_lr);
  n.check_range("min_lr", o.min_lr, 0.0, o.lr);
  n.read("grad_clip", o.grad_clip);
  n.check_range("grad_clip", o.grad_clip, 0.0, 1e12);
}

TrainOptions parse_train(ConfigNode n) {
  TrainOptions o;
  n.read("steps", o.steps);
  n.check_int_range("steps", o.steps, 1, kMaxSteps);
  n.read("batch_size", o.batch_size);
  n.check_int_range("batch_size", o.batch_size, 1, 65536);
  read_optimizer(n, o);
  n.read("grad_accum", o.grad_accum);
  n.check_int_range("grad_accum", o.grad_accum, 1, 1024);
  n.read("ema_decay", o.ema_decay);
  n.check_range("ema_decay", o.ema_decay, 0.0, 1.0);
  n.read("ema_warmup", o.ema_warmup);
  n.read_enum("precision", o.precision, kPrecisionNames);
  n.read("device", o.device);
  if (!is_device_name(o.device))
    n.fail("device", "unknown device '" + o.device + "'; valid devices: auto, cpu, cuda, cuda:N");
  n.read("seed", o.seed);
  n.check_int_range("seed", o.seed, 0, std::numeric_limits<int64_t>::max());
  n.read("log_every", o.log_every);
  n.check_int_range("log_every", o.log_every, 1, kMaxSteps);
  n.read("sample_every", o.sample_every);
  n.check_int_range("sample_every", o.sample_every, 0, kMaxSteps);
  n.read("ckpt_every", o.ckpt_every);
  n.check_int_range("ckpt_every", o.ckpt_every, 1, kMaxSteps);
  n.read("keep", o.keep);
  n.check_int_range("keep", o.keep, 0, 1000);
  n.read("channels_last", o.channels_last);
  n.read("fused_adamw", o.fused_adamw);
  n.read("cuda_graph", o.cuda_graph);
  if (o.cuda_graph && o.grad_accum > 1)
    n.fail("cuda_graph", "captures one micro-batch per step; it cannot be combined with grad_accum " +
                             std::to_string(o.grad_accum));
  n.read("num_threads", o.num_threads);
  n.check_int_range("num_threads", o.num_threads, 0, kMaxThreads);
  n.read("init_from", o.init_from);
  read_train_sample(n.child("sample"), o.sample);
  n.read("eval_every", o.eval_every);
  n.check_int_range("eval_every", o.eval_every, 0, kMaxSteps);
  read_train_eval(n.child("eval"), o);
  n.finish();
  return o;
}

YAML::Node emit_train(const TrainOptions& o) {
  YAML::Node n;
  emit_value(n, "steps", o.steps);
  emit_value(n, "batch_size", o.batch_size);
  emit_value(n, "lr", o.lr);
  emit_value(n, "betas", o.betas);
  emit_value(n, "weight_decay", o.weight_decay);
  emit_value(n, "adam_eps", o.adam_eps);
  emit_value(n, "warmup_steps", o.warmup_steps);
  emit_enum(n, "lr_schedule", o.lr_schedule, kLrScheduleNames);
  emit_value(n, "min_lr", o.min_lr);
  emit_value(n, "grad_clip", o.grad_clip);
  emit_value(n, "grad_accum", o.grad_accum);
  emit_value(n, "ema_decay", o.ema_decay);
  emit_value(n, "ema_warmup", o.ema_warmup);
  emit_enum(n, "precision", o.precision, kPrecisionNames);
  emit_value(n, "device", o.device);
  emit_value(n, "seed", o.seed);
  emit_value(n, "log_every", o.log_every);
  emit_value(n, "sample_every", o.sample_every);
  emit_value(n, "ckpt_every", o.ckpt_every);
  emit_value(n, "keep", o.keep);
  emit_value(n, "channels_last", o.channels_last);
  emit_value(n, "fused_adamw", o.fused_adamw);
  emit_value(n, "cuda_graph", o.cuda_graph);
  emit_value(n, "num_threads", o.num_threads);
  emit_value(n, "init_from", o.init_from);
  YAML::Node s;
  emit_value(s, "sampler", o.sample.sampler);
  emit_value(s, "steps", o.sample.steps);
  emit_value(s, "count", o.sample.count);
  emit_value(s, "cfg", o.sample.cfg);
  n["sample"] = s;
  emit_value(n, "eval_every", o.eval_every);
  YAML::Node e;
  emit_value(e, "samples", o.eval.samples);
  emit_value(e, "sampler", o.eval.sampler);
  emit_value(e, "steps", o.eval.steps);
  emit_value(e, "cfg", o.eval.cfg);
  emit_value(e, "features", o.eval.features);
  emit_value(e, "ref", o.eval.ref);
  n["eval"] = e;
  return n;
}

DistillOptions parse_distill(ConfigNode n) {
  DistillOptions o;
  n.read_enum("method", o.method, kDistillMethodNames);
  n.read("teacher", o.teacher);
  if (o.method != DistillMethod::none && o.teacher.empty())
    n.fail("teacher", "distill.method " + std::string(enum_name(o.method, kDistillMethodNames)) +
                          " needs the teacher's checkpoint");
  n.read_enum("solver", o.solver, kTeacherSolverNames);
  n.read("teacher_cfg", o.teacher_cfg);
  n.check_range("teacher_cfg", o.teacher_cfg, 0.0, 100.0);
  n.read_enum("distance", o.distance, kConsistencyDistanceNames);
  n.read("n_start", o.n_start);
  n.check_int_range("n_start", o.n_start, 2, 100000);
  n.read("n_end", o.n_end);
  n.check_int_range("n_end", o.n_end, o.n_start, 100000);
  n.read("mu0", o.mu0);
  n.check_range("mu0", o.mu0, 0.0, 1.0);
  n.finish();
  return o;
}

YAML::Node emit_distill(const DistillOptions& o) {
  YAML::Node n;
  emit_enum(n, "method", o.method, kDistillMethodNames);
  emit_value(n, "teacher", o.teacher);
  emit_enum(n, "solver", o.solver, kTeacherSolverNames);
  emit_value(n, "teacher_cfg", o.teacher_cfg);
  emit_enum(n, "distance", o.distance, kConsistencyDistanceNames);
  emit_value(n, "n_start", o.n_start);
  emit_value(n, "n_end", o.n_end);
  emit_value(n, "mu0", o.mu0);
  return n;
}

}  // namespace

ExperimentConfig parse_experiment_config(ConfigNode& root) {
  ExperimentConfig c;
  root.read("name", c.name);
  c.run_dir = "runs/" + c.name;
  root.read("run_dir", c.run_dir);
  c.data = parse_data(root.child("data"));
  c.model = parse_model(root.child("model"));
  c.diffusion = parse_diffusion(root.child("diffusion"));
  if (c.model.arch == ModelArch::classifier) {
    c.classifier = parse_classifier(root.child("classifier"));
  } else if (root.has("classifier")) {
    root.fail("classifier", "applies to model.arch 'classifier' only");
  }
  c.train = parse_train(root.child("train"));
  if (root.has("distill")) {
    c.distill = parse_distill(root.child("distill"));
    if (c.model.arch == ModelArch::classifier && c.distill.method != DistillMethod::none)
      root.fail("distill", "distils diffusion models; model.arch is 'classifier'");
    if (c.distill.method != DistillMethod::none && c.train.cuda_graph)
      root.fail("distill", "consistency distillation runs eagerly; set train.cuda_graph false");
  }
  root.finish();
  const ScheduleKind schedule = c.diffusion.schedule;
  if (schedule == ScheduleKind::edm && c.diffusion.prediction != Prediction::edm)
    root.fail("diffusion", "schedule 'edm' needs prediction 'edm' (VP predictions eps/v/x0 "
                           "are defined on the discrete VP grid)");
  if (c.model.learn_sigma && schedule != ScheduleKind::vp_linear && schedule != ScheduleKind::vp_cosine)
    root.fail("model", "learn_sigma needs a VP schedule (the learned variance interpolates "
                       "between β and β̃ of the discrete grid)");
  return c;
}

ExperimentConfig load_experiment_config(const std::string& path,
                                        const std::vector<std::string>& overrides) {
  ConfigNode root = ConfigNode::load_file(path);
  for (const auto& o : overrides) root.apply_override(o);
  return parse_experiment_config(root);
}

YAML::Node emit_experiment_config(const ExperimentConfig& c) {
  YAML::Node n;
  emit_value(n, "name", c.name);
  emit_value(n, "run_dir", c.run_dir);
  n["data"] = emit_data(c.data);
  n["model"] = emit_model(c.model);
  n["diffusion"] = emit_diffusion(c.diffusion);
  if (c.model.arch == ModelArch::classifier) n["classifier"] = emit_classifier(c.classifier);
  n["train"] = emit_train(c.train);
  if (c.distill.method != DistillMethod::none) n["distill"] = emit_distill(c.distill);
  return n;
}

}  // namespace diffuse
