#pragma once
// The typed form of an experiment YAML (configs/*.yaml). Parsed once, strictly, by
// parse_experiment_config; the rest of diffuse sees only these structs. Every field has a
// default; `emit_experiment_config` writes the resolved config back (parse → emit → parse
// is the identity). README.md "Config reference" documents each key.
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/config_node.h"

namespace diffuse {

// ---- data: ----------------------------------------------------------------------------
enum class DatasetType { idx, cifar10, image_folder, latents, random, couplings };
inline constexpr std::array<EnumName<DatasetType>, 6> kDatasetTypeNames{{
    {"idx", DatasetType::idx},
    {"cifar10", DatasetType::cifar10},
    {"image_folder", DatasetType::image_folder},
    {"latents", DatasetType::latents},
    {"random", DatasetType::random},
    {"couplings", DatasetType::couplings},  // (noise, sample) pairs of diffuse reflow
}};

struct DataOptions {
  DatasetType type = DatasetType::idx;
  std::string path = "/usr/share/datasets/fashion-mnist";  // folder holding the files
  std::string split = "train";                               // train | test
  int resolution = 0;       // output H = W; 0 keeps the native size
  int channels = 0;         // 1 or 3; 0 keeps the native channel count
  bool hflip = false;       // random horizontal flip (training augmentation)
  bool allow_upscale = false;  // image folders: upscale images smaller than `resolution`
  bool skip_corrupt = false;   // image folders: skip unreadable images (counted) instead of failing
  int64_t limit = 0;        // use only the first N items; 0 = all
  int num_workers = 2;      // background prefetch threads
  int prefetch_batches = 4; // batches queued ahead of the trainer
};

// ---- model: ---------------------------------------------------------------------------
enum class ModelArch { unet, dit, classifier };
inline constexpr std::array<EnumName<ModelArch>, 3> kModelArchNames{{
    {"unet", ModelArch::unet},
    {"dit", ModelArch::dit},
    {"classifier", ModelArch::classifier},
}};

// Downsampling by strided 3×3 conv: padding 1 on every side (ADM), or 0 left/top and 1
// right/bottom, as DDPM's TensorFlow 'SAME' convs on even maps and diffusers'
// downsample_padding 0 do (even feature maps only).
enum class DownsamplePadding { symmetric, bottom_right };
inline constexpr std::array<EnumName<DownsamplePadding>, 2> kDownsamplePaddingNames{{
    {"symmetric", DownsamplePadding::symmetric},
    {"bottom_right", DownsamplePadding::bottom_right},
}};

struct UNetOptions {
  int base_channels = 64;
  std::vector<int> channel_mult{1, 2, 2};
  int num_res_blocks = 2;
  std::vector<int> attention_resolutions{14};  // feature-map sizes (pixels) that get attention
  int num_heads = 4;
  int head_channels = -1;   // > 0: heads = channels / head_channels (overrides num_heads)
  double dropout = 0.0;
  int num_groups = 32;      // GroupNorm groups
  double norm_eps = 1e-5;   // GroupNorm ε (ADM: PyTorch's default; DDPM: 1e-6)
  DownsamplePadding downsample_padding = DownsamplePadding::symmetric;
  bool scale_shift_norm = true;  // ADM's adaptive GroupNorm (scale, shift) from the embedding
  // GroupNorm before the middle attention (diffusers' UNetMidBlock2D has none under
  // scale-shift conditioning).
  bool middle_attention_norm = true;
  bool resblock_updown = false;  // BigGAN-style resblocks for down/up-sampling
};

struct DiTOptions {
  int depth = 12;
  int hidden_size = 384;
  int num_heads = 6;
  int patch_size = 2;
  double mlp_ratio = 4.0;
  double mlp_norm_eps = 1e-6;  // ε of the LayerNorm before each MLP (DiT repository 1e-6, diffusers 1e-5)
};

// The sinusoidal features of the noise condition (models/embeddings.h):
// frequencies 10000^(-i/(h - freq_shift)), i < h = dim/2, in the order [cos | sin] (ADM, the
// DiT repository) or [sin | cos] (DDPM). freq_shift 1 is DDPM's and diffusers' DiT's.
enum class TimestepOrder { cos_sin, sin_cos };
inline constexpr std::array<EnumName<TimestepOrder>, 2> kTimestepOrderNames{{
    {"cos_sin", TimestepOrder::cos_sin},
    {"sin_cos", TimestepOrder::sin_cos},
}};

struct TimestepFeatures {
  TimestepOrder order = TimestepOrder::cos_sin;
  int freq_shift = 0;  // 0 or 1
};

struct ModelOptions {
  ModelArch arch = ModelArch::unet;
  std::string preset;       // registry name; fills the arch options before explicit keys
  int in_channels = 0;      // 0: from the dataset
  int image_size = 0;       // 0: from the dataset
  int num_classes = -1;     // -1: from the dataset (class-conditional); 0: unconditional
  bool learn_sigma = false; // output doubles its channels; hybrid loss (Nichol & Dhariwal 2021)
  TimestepFeatures timestep;
  UNetOptions unet;
  DiTOptions dit;
};

// ---- classifier: ----------------------------------------------------------------------
// A noise-conditional classifier p(y | x, σ) (model.arch: classifier) is trained on x_σ with
// σ from the diffusion section's training distribution, or on clean images only.
enum class ClassifierNoise { noisy, none };
inline constexpr std::array<EnumName<ClassifierNoise>, 2> kClassifierNoiseNames{{
    {"noisy", ClassifierNoise::noisy},
    {"none", ClassifierNoise::none},
}};

struct ClassifierOptions {
  ClassifierNoise noise = ClassifierNoise::noisy;
  // Test-split accuracy at each checkpoint: at these σ, over this many batches (0 = none).
  std::vector<double> eval_sigmas{0.0, 0.1, 0.3, 1.0, 3.0};
  int eval_batches = 20;
};

// ---- diffusion: -----------------------------------------------------------------------
enum class ScheduleKind { vp_linear, vp_cosine, edm, ve, flow };
inline constexpr std::array<EnumName<ScheduleKind>, 5> kScheduleKindNames{{
    {"vp_linear", ScheduleKind::vp_linear},
    {"vp_cosine", ScheduleKind::vp_cosine},
    {"edm", ScheduleKind::edm},
    {"ve", ScheduleKind::ve},
    {"flow", ScheduleKind::flow},
}};

enum class Prediction { eps, v, x0, edm, flow };
inline constexpr std::array<EnumName<Prediction>, 5> kPredictionNames{{
    {"eps", Prediction::eps},
    {"v", Prediction::v},
    {"x0", Prediction::x0},
    {"edm", Prediction::edm},
    {"flow", Prediction::flow},
}};

// How training draws σ (losses/dsm_loss.h has the formulas).
enum class SigmaDistribution { grid, log_normal, log_uniform, uniform_t };
inline constexpr std::array<EnumName<SigmaDistribution>, 4> kSigmaDistributionNames{{
    {"grid", SigmaDistribution::grid},
    {"log_normal", SigmaDistribution::log_normal},
    {"log_uniform", SigmaDistribution::log_uniform},
    {"uniform_t", SigmaDistribution::uniform_t},
}};

enum class LossWeighting { uniform, min_snr, edm };
inline constexpr std::array<EnumName<LossWeighting>, 3> kLossWeightingNames{{
    {"uniform", LossWeighting::uniform},
    {"min_snr", LossWeighting::min_snr},
    {"edm", LossWeighting::edm},
}};

struct DiffusionOptions {
  ScheduleKind schedule = ScheduleKind::vp_linear;
  int timesteps = 1000;        // T for VP schedules
  double beta_start = 1e-4;    // vp_linear
  double beta_end = 0.02;      // vp_linear
  double cosine_s = 0.008;     // vp_cosine offset s
  double max_beta = 0.999;     // vp_cosine β clip
  double sigma_min = 0.002;    // edm, ve, flow (defaults differ per schedule)
  double sigma_max = 80.0;     // edm, ve, flow
  double sigma_data = 0.5;     // edm preconditioning σ_d
  double shift = 1.0;          // flow: SD3's resolution shift, σ → shift·σ
  Prediction prediction = Prediction::eps;
  SigmaDistribution sigma_distribution = SigmaDistribution::grid;
  LossWeighting weighting = LossWeighting::uniform;
  double min_snr_gamma = 5.0;
  double p_mean = -1.2;        // log-normal training σ: ln σ ~ N(p_mean, p_std²)
  double p_std = 1.2;
  double p_uncond = 0.0;       // label dropout to the null class (classifier-free guidance)
  double vlb_weight = 0.001;   // λ of L_simple + λ L_vlb when model.learn_sigma
};

// ---- train: ---------------------------------------------------------------------------
enum class LrSchedule { constant, cosine };
inline constexpr std::array<EnumName<LrSchedule>, 2> kLrScheduleNames{{
    {"constant", LrSchedule::constant},
    {"cosine", LrSchedule::cosine},
}};

enum class Precision { fp32, bf16 };
inline constexpr std::array<EnumName<Precision>, 2> kPrecisionNames{{
    {"fp32", Precision::fp32},
    {"bf16", Precision::bf16},
}};

struct TrainSampleOptions {
  std::string sampler = "ddim";  // sampler name used for the periodic sample grids
  int steps = 50;
  int count = 64;                // images in each grid (fixed seeds 0..count-1)
  double cfg = 1.0;              // guidance weight for class-conditional models
};

// Sample-quality evaluation during training (train.eval_every > 0): FD (and class accuracy
// when the feature network is a classifier and the model class-conditional) of `samples`
// images from fixed seeds 0..samples-1, classes cycling, against `ref`.
struct TrainEvalOptions {
  int samples = 1000;
  std::string sampler = "dpmpp2m";
  int steps = 20;
  double cfg = 1.0;
  std::string features;  // classifier checkpoint or torchscript:PATH (required with eval_every)
  // Image source of the reference (eval/feature_stats.h); empty: the data section's dataset
  // with split test (idx, cifar10), else the training data itself.
  std::string ref;
};

struct TrainOptions {
  int64_t steps = 10000;
  int batch_size = 128;
  double lr = 2e-4;
  std::vector<double> betas{0.9, 0.999};
  double weight_decay = 0.0;
  double adam_eps = 1e-8;
  int64_t warmup_steps = 0;
  LrSchedule lr_schedule = LrSchedule::constant;
  double min_lr = 0.0;           // cosine floor
  double grad_clip = 1.0;        // global-norm clip; 0 disables
  int grad_accum = 1;            // micro-batches per optimizer step
  double ema_decay = 0.9999;
  bool ema_warmup = true;        // decay_n = min(decay, (1 + n) / (10 + n))
  Precision precision = Precision::bf16;  // bf16 autocast on CUDA; CPU always runs fp32
  std::string device = "auto";   // auto | cpu | cuda | cuda:N
  int64_t seed = 0;
  int64_t log_every = 100;
  int64_t sample_every = 1000;   // 0 disables
  int64_t ckpt_every = 1000;
  int keep = 3;                  // numbered checkpoints kept besides last.pt
  bool channels_last = true;     // CUDA UNet memory format
  bool fused_adamw = true;       // one fused AdamW kernel on CUDA (LibTorch 2.x)
  bool cuda_graph = false;       // capture the whole step in a CUDA graph (CUDA, LibTorch 2.x)
  int num_threads = 0;           // CPU intra-op threads for diffuse train; 0 = every logical CPU
  // A checkpoint whose weights (EMA when it has them) start a fresh run, e.g. the teacher of
  // a reflow round; the model sections must match. Empty: random initialisation.
  std::string init_from;
  TrainSampleOptions sample;
  int64_t eval_every = 0;        // 0 disables
  TrainEvalOptions eval;
};

// ---- distill: -------------------------------------------------------------------------
// Consistency distillation (Song et al. 2023, Algorithm 2): the student starts from the
// teacher's weights and learns f(x, σ) with f(x, σ_min) = x built in; the run's EMA network
// is the target θ⁻, updated with μ(k) instead of train.ema_decay.
enum class DistillMethod { none, consistency };
inline constexpr std::array<EnumName<DistillMethod>, 2> kDistillMethodNames{{
    {"none", DistillMethod::none},
    {"consistency", DistillMethod::consistency},
}};

enum class TeacherSolver { euler, heun };
inline constexpr std::array<EnumName<TeacherSolver>, 2> kTeacherSolverNames{{
    {"euler", TeacherSolver::euler},
    {"heun", TeacherSolver::heun},
}};

enum class ConsistencyDistance { l2, pseudo_huber };
inline constexpr std::array<EnumName<ConsistencyDistance>, 2> kConsistencyDistanceNames{{
    {"l2", ConsistencyDistance::l2},
    {"pseudo_huber", ConsistencyDistance::pseudo_huber},
}};

struct DistillOptions {
  DistillMethod method = DistillMethod::none;
  std::string teacher;                  // checkpoint of the teacher (required with a method)
  TeacherSolver solver = TeacherSolver::heun;  // the teacher's ODE step σ_{n+1} → σ_n
  double teacher_cfg = 1.0;             // classifier-free guidance of the teacher
  ConsistencyDistance distance = ConsistencyDistance::pseudo_huber;
  // N(k), the number of discretisation points, grows from n_start at the first step to n_end at
  // the last (Song et al. 2023 App. C with s0 = n_start, s1 + 1 = n_end); equal: fixed N.
  int n_start = 18;
  int n_end = 18;
  double mu0 = 0.95;                    // target decay μ(k) = exp(n_start ln μ0 / N(k))
};

struct ExperimentConfig {
  std::string name = "run";
  std::string run_dir = "runs/run";  // config.yaml, metrics.jsonl, samples/, ckpt/
  DataOptions data;
  ModelOptions model;
  DiffusionOptions diffusion;
  ClassifierOptions classifier;  // read and written only for model.arch: classifier
  TrainOptions train;
  DistillOptions distill;        // read and written only when the config has a distill section
};

// Reads and validates the whole config from `root` (calls finish() on every section).
ExperimentConfig parse_experiment_config(ConfigNode& root);
// Loads `path`, applies `overrides` ("a.b=value"), parses.
ExperimentConfig load_experiment_config(const std::string& path,
                                        const std::vector<std::string>& overrides = {});
YAML::Node emit_experiment_config(const ExperimentConfig& config);

// Fills the model preset's values into `model` (throws ConfigError for an unknown preset,
// listing the valid ones). Defined by the model registry.
void apply_model_preset(const std::string& preset, ModelOptions& model);

}  // namespace diffuse
