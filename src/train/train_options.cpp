#include "diffuse/train/train_options.h"

#include <limits>

#include "diffuse/core/device.h"
#include "diffuse/sampling/sampler.h"

namespace diffuse {

namespace {

// Upper bounds that keep a typo from asking for terabytes: larger values are never meant.
constexpr int64_t kMaxSteps = 1'000'000'000'000;
constexpr int64_t kMaxThreads = 1024;

// A `sampler` key (train.sample, train.eval): a name of the sampler table.
ValueCheck<std::string> sampler_name() {
  return checks::custom<std::string>(sampler_names(), [](const std::string& name) {
    try {
      find_sampler(name);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  });
}

ValueCheck<int64_t> steps_check(int64_t lo) { return checks::int_range<int64_t>(lo, kMaxSteps); }

OptionSchema<TrainSampleOptions> make_sample_schema() {
  using O = TrainSampleOptions;
  OptionSchema<O> s;
  s.field("sampler", &O::sampler, "the sampler of the periodic sample grids (checked at start)",
          sampler_name());
  s.field("steps", &O::steps, "its steps", checks::int_range<int>(1, 10000));
  s.field("count", &O::count, "images in each grid (fixed seeds 0..count-1)",
          checks::int_range<int>(1, 1024));
  s.field("cfg", &O::cfg, "guidance weight for class-conditional models",
          checks::range(0.0, 100.0));
  return s;
}

OptionSchema<TrainEvalOptions> make_eval_schema() {
  using O = TrainEvalOptions;
  OptionSchema<O> s;
  s.field("samples", &O::samples, "generated images: fixed seeds 0..samples-1, the classes cycling",
          checks::int_range<int>(4, 1'000'000));
  s.field("sampler", &O::sampler, "their sampler", sampler_name());
  s.field("steps", &O::steps, "its steps", checks::int_range<int>(1, 10000));
  s.field("cfg", &O::cfg, "guidance weight", checks::range(0.0, 100.0));
  s.field("features", &O::features,
          "the feature network: a classifier checkpoint or `torchscript:PATH` (required with "
          "eval_every)");
  s.field("ref", &O::ref,
          "the reference images (an image source of `diffuse eval`); empty: the data section's "
          "dataset with split "
          "test for idx and cifar10, else the training data");
  return s;
}

const OptionSchema<TrainSampleOptions>& sample_schema() { return built_once<make_sample_schema>(); }

const OptionSchema<TrainEvalOptions>& eval_schema() { return built_once<make_eval_schema>(); }

void add_optimizer(OptionSchema<TrainOptions>& s) {
  using O = TrainOptions;
  s.field("lr", &O::lr, "AdamW learning rate", checks::positive(10.0));
  s.field("betas", &O::betas, "AdamW β1, β2",
          checks::custom<std::vector<double>>(
              "two numbers in [0, 1)", [](const std::vector<double>& b) {
                return b.size() != 2 || b[0] < 0 || b[0] >= 1 || b[1] < 0 || b[1] >= 1
                           ? std::string("expected two numbers in [0, 1), e.g. [0.9, 0.999]")
                           : std::string();
              }));
  s.field("weight_decay", &O::weight_decay, "AdamW decoupled weight decay",
          checks::range(0.0, 10.0));
  s.field("adam_eps", &O::adam_eps, "AdamW ε", checks::positive(1.0));
  s.field("warmup_steps", &O::warmup_steps, "linear learning-rate warm-up", steps_check(0));
  s.choice("lr_schedule", &O::lr_schedule, kLrScheduleNames,
           "after warm-up: constant, or cosine down to `min_lr`");
  s.field("min_lr", &O::min_lr, "floor of the cosine schedule", checks::by_rule<double>("[0, lr]"));
  s.field("grad_clip", &O::grad_clip, "global-norm gradient clip (0 disables)",
          checks::range(0.0, 1e12));
  s.field("grad_accum", &O::grad_accum, "micro-batches per optimizer step",
          checks::int_range<int>(1, 1024));
  s.field("ema_decay", &O::ema_decay, "EMA decay", checks::range(0.0, 1.0));
  s.field("ema_warmup", &O::ema_warmup,
          "EMA warm-up: decay min(ema_decay, (1+n)/(10+n)) at step n");
}

void add_runtime(OptionSchema<TrainOptions>& s) {
  using O = TrainOptions;
  s.choice("precision", &O::precision, kPrecisionNames,
           "bf16 autocast on CUDA; the CPU always trains in fp32");
  s.field("device", &O::device, "where training runs",
          checks::custom<std::string>("auto | cpu | cuda | cuda:N", [](const std::string& d) {
            return is_device_name(d)
                       ? std::string()
                       : "unknown device '" + d + "'; valid devices: auto, cpu, cuda, cuda:N";
          }));
  s.field("seed", &O::seed, "seeds the data order, noise and dropout",
          checks::int_range<int64_t>(0, std::numeric_limits<int64_t>::max()));
  s.field("log_every", &O::log_every, "steps between metrics.jsonl rows", steps_check(1));
  s.field("sample_every", &O::sample_every, "steps between sample grids (0 disables)",
          steps_check(0));
  s.field("ckpt_every", &O::ckpt_every, "steps between checkpoints", steps_check(1));
  s.field("keep", &O::keep, "numbered checkpoints kept besides last.pt",
          checks::int_range<int>(0, 1000));
  s.field("channels_last", &O::channels_last, "channels-last memory format for the UNet on CUDA");
  s.field("fused_adamw", &O::fused_adamw,
          "on CUDA with LibTorch 2.x, one fused multi-tensor AdamW kernel (`at::_fused_adamw_`) "
          "instead of a loop "
          "over tensors; same update, same checkpoint format");
  s.field("cuda_graph", &O::cuda_graph,
          "capture the whole step (forward, backward, AdamW, EMA) in a CUDA graph after 3 eager "
          "warm-up steps and "
          "replay it; needs CUDA, LibTorch 2.x, `fused_adamw` and `grad_accum: 1`");
  s.field("num_threads", &O::num_threads,
          "CPU threads for `diffuse train` (0 = every logical CPU; `--threads` overrides)",
          checks::int_range<int>(0, kMaxThreads));
  s.field(
      "init_from", &O::init_from,
      "a checkpoint whose weights (EMA when it has them) start a fresh run; the model sections "
      "must match "
      "(reflow sets it to the teacher; consistency distillation defaults to `distill.teacher`)");
}

void check_train(const TrainOptions& o, const OptionFail& fail) {
  checks::check_value(fail, "min_lr", checks::range(0.0, o.lr).problem(o.min_lr));
  if (o.cuda_graph && o.grad_accum > 1)
    fail("cuda_graph", "captures one micro-batch per step; it cannot be combined with grad_accum " +
                           std::to_string(o.grad_accum));
  if (o.eval_every > 0 && o.eval.features.empty())
    fail("eval.features",
         "train.eval_every " + std::to_string(o.eval_every) +
             " needs a feature network: a classifier checkpoint (configs/fashion_features.yaml) or "
             "torchscript:PATH");
}

OptionSchema<TrainOptions> make_train_schema() {
  using O = TrainOptions;
  OptionSchema<O> s;
  s.field("steps", &O::steps, "optimizer steps", steps_check(1));
  s.field("batch_size", &O::batch_size, "images per micro-batch", checks::int_range<int>(1, 65536));
  add_optimizer(s);
  add_runtime(s);
  s.section("sample", &O::sample, sample_schema());
  s.field("eval_every", &O::eval_every,
          "steps between evaluations of generated samples (FD, class accuracy; 0 disables); "
          "rows in metrics.jsonl and curves.png",
          steps_check(0));
  s.section("eval", &O::eval, eval_schema());
  s.rule(check_train);
  return s;
}

}  // namespace

const OptionSchema<TrainOptions>& train_options_schema() { return built_once<make_train_schema>(); }

}  // namespace diffuse
