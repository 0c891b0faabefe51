#include "diffuse/core/experiment_config.h"

namespace diffuse {
namespace {

void check_positive(ConfigNode& n, const std::string& key, double value) {
  if (!(value > 0)) n.fail(key, "must be > 0, found " + format_double(value));
}

void check_range(ConfigNode& n, const std::string& key, double value, double lo, double hi) {
  if (!(value >= lo && value <= hi))
    n.fail(key, "must lie in [" + format_double(lo) + ", " + format_double(hi) + "], found " +
                    format_double(value));
}

DataOptions parse_data(ConfigNode n) {
  DataOptions o;
  n.read_enum("type", o.type, kDatasetTypeNames);
  n.read("path", o.path);
  n.read("split", o.split);
  if (o.split != "train" && o.split != "test")
    n.fail("split", "unknown value '" + o.split + "'; valid values: train, test");
  n.read("resolution", o.resolution);
  if (o.resolution < 0) n.fail("resolution", "must be >= 0 (0 keeps the native size)");
  n.read("channels", o.channels);
  if (o.channels != 0 && o.channels != 1 && o.channels != 3)
    n.fail("channels", "must be 0 (native), 1 or 3, found " + std::to_string(o.channels));
  n.read("hflip", o.hflip);
  n.read("allow_upscale", o.allow_upscale);
  n.read("skip_corrupt", o.skip_corrupt);
  n.read("limit", o.limit);
  if (o.limit < 0) n.fail("limit", "must be >= 0 (0 = all)");
  n.read("num_workers", o.num_workers);
  if (o.num_workers < 0) n.fail("num_workers", "must be >= 0");
  n.read("prefetch_batches", o.prefetch_batches);
  if (o.prefetch_batches < 1) n.fail("prefetch_batches", "must be >= 1");
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
  if (o.base_channels < 1) n.fail("base_channels", "must be >= 1");
  n.read("channel_mult", o.channel_mult);
  if (o.channel_mult.empty()) n.fail("channel_mult", "must list at least one multiplier");
  for (int m : o.channel_mult)
    if (m < 1) n.fail("channel_mult", "multipliers must be >= 1");
  n.read("num_res_blocks", o.num_res_blocks);
  if (o.num_res_blocks < 1) n.fail("num_res_blocks", "must be >= 1");
  n.read("attention_resolutions", o.attention_resolutions);
  n.read("num_heads", o.num_heads);
  if (o.num_heads < 1) n.fail("num_heads", "must be >= 1");
  n.read("head_channels", o.head_channels);
  n.read("dropout", o.dropout);
  check_range(n, "dropout", o.dropout, 0.0, 1.0);
  n.read("num_groups", o.num_groups);
  if (o.num_groups < 1) n.fail("num_groups", "must be >= 1");
  n.read("scale_shift_norm", o.scale_shift_norm);
  n.read("resblock_updown", o.resblock_updown);
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
  emit_value(n, "scale_shift_norm", o.scale_shift_norm);
  emit_value(n, "resblock_updown", o.resblock_updown);
  return n;
}

void parse_dit(ConfigNode n, DiTOptions& o) {
  n.read("depth", o.depth);
  if (o.depth < 1) n.fail("depth", "must be >= 1");
  n.read("hidden_size", o.hidden_size);
  n.read("num_heads", o.num_heads);
  if (o.num_heads < 1 || o.hidden_size < 1 || o.hidden_size % o.num_heads != 0)
    n.fail("hidden_size", "must be a positive multiple of num_heads (" +
                              std::to_string(o.num_heads) + "), found " +
                              std::to_string(o.hidden_size));
  n.read("patch_size", o.patch_size);
  if (o.patch_size < 1) n.fail("patch_size", "must be >= 1");
  n.read("mlp_ratio", o.mlp_ratio);
  check_positive(n, "mlp_ratio", o.mlp_ratio);
  n.finish();
}

YAML::Node emit_dit(const DiTOptions& o) {
  YAML::Node n;
  emit_value(n, "depth", o.depth);
  emit_value(n, "hidden_size", o.hidden_size);
  emit_value(n, "num_heads", o.num_heads);
  emit_value(n, "patch_size", o.patch_size);
  emit_value(n, "mlp_ratio", o.mlp_ratio);
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
    }
  }
  n.read("in_channels", o.in_channels);
  n.read("image_size", o.image_size);
  n.read("num_classes", o.num_classes);
  if (o.in_channels < 0) n.fail("in_channels", "must be >= 0 (0 = from the dataset)");
  if (o.image_size < 0) n.fail("image_size", "must be >= 0 (0 = from the dataset)");
  if (o.num_classes < -1) n.fail("num_classes", "must be -1 (from the dataset), 0 or more");
  n.read("learn_sigma", o.learn_sigma);
  if (o.learn_sigma && o.arch == ModelArch::classifier)
    n.fail("learn_sigma", "a classifier has no variance output");
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
  if (o.arch == ModelArch::unet || o.arch == ModelArch::classifier) n["unet"] = emit_unet(o.unet);
  if (o.arch == ModelArch::dit) n["dit"] = emit_dit(o.dit);
  return n;
}

DiffusionOptions parse_diffusion(ConfigNode n) {
  DiffusionOptions o;
  n.read_enum("schedule", o.schedule, kScheduleKindNames);
  // Each schedule brings its own defaults (the published settings):
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
  n.read("timesteps", o.timesteps);
  if (o.timesteps < 2) n.fail("timesteps", "must be >= 2");
  n.read("beta_start", o.beta_start);
  n.read("beta_end", o.beta_end);
  check_range(n, "beta_start", o.beta_start, 1e-12, 0.999);
  check_range(n, "beta_end", o.beta_end, o.beta_start, 0.999);
  n.read("cosine_s", o.cosine_s);
  check_range(n, "cosine_s", o.cosine_s, 0.0, 1.0);
  n.read("max_beta", o.max_beta);
  check_range(n, "max_beta", o.max_beta, 1e-6, 0.9999);
  n.read("sigma_min", o.sigma_min);
  check_positive(n, "sigma_min", o.sigma_min);
  n.read("sigma_max", o.sigma_max);
  if (!(o.sigma_max > o.sigma_min)) n.fail("sigma_max", "must be greater than sigma_min");
  n.read("sigma_data", o.sigma_data);
  check_positive(n, "sigma_data", o.sigma_data);
  n.read("shift", o.shift);
  check_positive(n, "shift", o.shift);
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
  check_positive(n, "min_snr_gamma", o.min_snr_gamma);
  n.read("p_mean", o.p_mean);
  n.read("p_std", o.p_std);
  check_positive(n, "p_std", o.p_std);
  n.read("p_uncond", o.p_uncond);
  check_range(n, "p_uncond", o.p_uncond, 0.0, 1.0);
  n.read("vlb_weight", o.vlb_weight);
  check_range(n, "vlb_weight", o.vlb_weight, 0.0, 1e6);
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
  for (double s : o.eval_sigmas)
    if (!(s >= 0)) n.fail("eval_sigmas", "σ values must be >= 0, found " + format_double(s));
  n.read("eval_batches", o.eval_batches);
  if (o.eval_batches < 0) n.fail("eval_batches", "must be >= 0 (0 = no test accuracy)");
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

TrainOptions parse_train(ConfigNode n) {
  TrainOptions o;
  n.read("steps", o.steps);
  if (o.steps < 1) n.fail("steps", "must be >= 1");
  n.read("batch_size", o.batch_size);
  if (o.batch_size < 1) n.fail("batch_size", "must be >= 1");
  n.read("lr", o.lr);
  check_positive(n, "lr", o.lr);
  n.read("betas", o.betas);
  if (o.betas.size() != 2 || o.betas[0] < 0 || o.betas[0] >= 1 || o.betas[1] < 0 || o.betas[1] >= 1)
    n.fail("betas", "expected two numbers in [0, 1), e.g. [0.9, 0.999]");
  n.read("weight_decay", o.weight_decay);
  check_range(n, "weight_decay", o.weight_decay, 0.0, 10.0);
  n.read("adam_eps", o.adam_eps);
  check_positive(n, "adam_eps", o.adam_eps);
  n.read("warmup_steps", o.warmup_steps);
  if (o.warmup_steps < 0) n.fail("warmup_steps", "must be >= 0");
  n.read_enum("lr_schedule", o.lr_schedule, kLrScheduleNames);
  n.read("min_lr", o.min_lr);
  check_range(n, "min_lr", o.min_lr, 0.0, o.lr);
  n.read("grad_clip", o.grad_clip);
  check_range(n, "grad_clip", o.grad_clip, 0.0, 1e12);
  n.read("grad_accum", o.grad_accum);
  if (o.grad_accum < 1) n.fail("grad_accum", "must be >= 1");
  n.read("ema_decay", o.ema_decay);
  check_range(n, "ema_decay", o.ema_decay, 0.0, 1.0);
  n.read("ema_warmup", o.ema_warmup);
  n.read_enum("precision", o.precision, kPrecisionNames);
  n.read("device", o.device);
  n.read("seed", o.seed);
  n.read("log_every", o.log_every);
  if (o.log_every < 1) n.fail("log_every", "must be >= 1");
  n.read("sample_every", o.sample_every);
  if (o.sample_every < 0) n.fail("sample_every", "must be >= 0 (0 disables)");
  n.read("ckpt_every", o.ckpt_every);
  if (o.ckpt_every < 1) n.fail("ckpt_every", "must be >= 1");
  n.read("keep", o.keep);
  if (o.keep < 0) n.fail("keep", "must be >= 0");
  n.read("channels_last", o.channels_last);
  n.read("fused_adamw", o.fused_adamw);
  n.read("cuda_graph", o.cuda_graph);
  if (o.cuda_graph && o.grad_accum > 1)
    n.fail("cuda_graph", "captures one micro-batch per step; it cannot be combined with grad_accum " +
                             std::to_string(o.grad_accum));
  n.read("num_threads", o.num_threads);
  if (o.num_threads < 0) n.fail("num_threads", "must be >= 0 (0 = LibTorch default)");
  ConfigNode s = n.child("sample");
  s.read("sampler", o.sample.sampler);
  s.read("steps", o.sample.steps);
  if (o.sample.steps < 1) s.fail("steps", "must be >= 1");
  s.read("count", o.sample.count);
  if (o.sample.count < 1) s.fail("count", "must be >= 1");
  s.read("cfg", o.sample.cfg);
  s.finish();
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
  YAML::Node s;
  emit_value(s, "sampler", o.sample.sampler);
  emit_value(s, "steps", o.sample.steps);
  emit_value(s, "count", o.sample.count);
  emit_value(s, "cfg", o.sample.cfg);
  n["sample"] = s;
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
  return n;
}

}  // namespace diffuse
