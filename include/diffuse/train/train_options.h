#pragma once
// The train: section of an experiment config. Keys, valid values and meanings are
// described once, by train_options_schema() (README.md "Config reference").
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/option_schema.h"

namespace diffuse {

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

// The periodic sample grids (fixed seeds 0..count-1).
struct TrainSampleOptions {
  std::string sampler = "ddim";
  int steps = 50;
  int count = 64;
  double cfg = 1.0;
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
  std::string ref;  // image source of the reference (eval/feature_stats.h); empty: see the schema
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
  double min_lr = 0.0;     // cosine floor
  double grad_clip = 1.0;  // global-norm clip; 0 disables
  int grad_accum = 1;      // micro-batches per optimizer step
  double ema_decay = 0.9999;
  bool ema_warmup = true;  // decay_n = min(decay, (1 + n) / (10 + n))
  Precision precision = Precision::bf16;
  std::string device = "auto";
  int64_t seed = 0;
  int64_t log_every = 100;
  int64_t sample_every = 1000;  // 0 disables
  int64_t ckpt_every = 1000;
  int keep = 3;
  bool channels_last = true;
  bool fused_adamw = true;
  bool cuda_graph = false;
  int num_threads = 0;    // 0 = every logical CPU
  std::string init_from;  // empty: random initialisation
  TrainSampleOptions sample;
  int64_t eval_every = 0;  // 0 disables
  TrainEvalOptions eval;
};

const OptionSchema<TrainOptions>& train_options_schema();

}  // namespace diffuse
