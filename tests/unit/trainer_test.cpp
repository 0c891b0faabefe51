// The trainer at library level (DESIGN §4): exact resume (losses, model, EMA and optimizer
// state bit for bit on CPU), checkpoint retention, checkpoint errors, and the LR schedule.
// A tiny class-conditional UNet with dropout and label dropout on a 24-image IDX set, so that
// every random stream the trainer keeps (σ/noise/labels, dropout, data order, flips) matters.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>
#include <type_traits>

#include "diffuse/core/error.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/models/registry.h"
#include "diffuse/train/checkpoint.h"
#include "diffuse/train/trainer.h"
#include "support/dataset_files.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

// 24 images in 10 classes: 6 batches of 4 per epoch, so that 4 steps of 1 micro-batch (or 4
// steps of 2) end mid-epoch, and 8 steps cross an epoch boundary.
constexpr int64_t kImages = 24;
constexpr int64_t kSize = 8;

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One intra-op thread: the machine is shared, and the reference run and the resumed run
    // must reduce in the same order anyway.
    torch::set_num_threads(1);
    test::write_idx_split(dir.file("idx"), "train", test::pattern_images(kImages, kSize, kSize),
                          test::pattern_labels(kImages), false);
  }

  ExperimentConfig config(const std::string& run) const {
    ExperimentConfig c;
    c.name = "tiny";
    c.run_dir = dir.file(run);
    c.data.type = DatasetType::idx;
    c.data.path = dir.file("idx");
    c.data.hflip = true;
    c.data.num_workers = 1;  // batches built ahead on a thread: the order must not depend on it
    c.data.prefetch_batches = 2;
    c.model.arch = ModelArch::unet;
    c.model.unet.base_channels = 16;
    c.model.unet.channel_mult = {1, 2};
    c.model.unet.num_res_blocks = 1;
    c.model.unet.attention_resolutions = {};
    c.model.unet.num_groups = 8;
    c.model.unet.dropout = 0.2;  // draws from LibTorch's default generator
    c.diffusion.timesteps = 50;
    c.diffusion.p_uncond = 0.2;  // label dropout draws from the trainer's generator
    auto& t = c.train;
    t.steps = 8;
    t.batch_size = 4;
    t.lr = 2e-3;
    t.warmup_steps = 2;
    t.lr_schedule = LrSchedule::cosine;
    t.min_lr = 1e-4;
    t.grad_clip = 0.5;
    t.ema_decay = 0.9;
    t.precision = Precision::fp32;
    t.device = "cpu";
    t.seed = 5;
    t.log_every = 1;
    t.sample_every = 0;
    t.ckpt_every = 4;
    t.keep = 10;
    return c;
  }

  test::TempDir dir;
};

struct MetricsRow {
  int64_t step;
  std::string loss, lr;  // as written: equal text means equal doubles
};

std::vector<MetricsRow> read_metrics(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  const std::regex row_re(R"re(^\{"step": (\d+), "loss": ([^,]+), "lr": ([^,]+),)re");
  std::vector<MetricsRow> rows;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    EXPECT_TRUE(std::regex_search(line, m, row_re)) << "unexpected metrics row: " << line;
    if (!m.empty()) rows.push_back({std::stoll(m[1]), m[2], m[3]});
  }
  return rows;
}

void expect_same_metrics(const std::vector<MetricsRow>& a, const std::vector<MetricsRow>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].step, b[i].step) << "row " << i;
    EXPECT_EQ(a[i].loss, b[i].loss) << "step " << a[i].step;
    EXPECT_EQ(a[i].lr, b[i].lr) << "step " << a[i].step;
  }
}

// The AdamW state of `param`. LibTorch 1.13 keys the state by the TensorImpl address as text,
// 2.x by the address itself.
template <class StateMap>
const torch::optim::AdamWParamState& adam_state(const StateMap& state, const torch::Tensor& param) {
  using Key = typename StateMap::key_type;
  void* address = param.unsafeGetTensorImpl();
  Key key{};
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream text;
    text << address;
    key = text.str();
  } else {
    key = address;
  }
  return static_cast<const torch::optim::AdamWParamState&>(*state.at(key));
}

// Everything a checkpoint holds that training continues from, loaded into fresh modules.
struct Restored {
  CheckpointMeta meta;
  Precond model{nullptr};
  std::shared_ptr<DiffusionNet> ema;
  std::unique_ptr<torch::optim::AdamW> optimizer;
};

Restored restore(const std::string& path) {
  CheckpointReader reader(path);
  Restored r;
  r.meta = reader.meta();
  ConfigNode root = ConfigNode::load_string(r.meta.config_yaml, path);
  const ExperimentConfig c = parse_experiment_config(root);
  r.model = Precond(make_model(c.model), c.diffusion.prediction, NoiseSchedule::from_options(c.diffusion));
  r.ema = make_model(c.model);
  reader.load_module("model", *r.model->net_ptr());
  EXPECT_TRUE(reader.has_ema());
  reader.load_module("ema", *r.ema);
  r.optimizer = std::make_unique<torch::optim::AdamW>(r.model->parameters(), torch::optim::AdamWOptions(1.0));
  reader.load_optimizer(*r.optimizer);
  return r;
}

void expect_same_tensors(const torch::OrderedDict<std::string, torch::Tensor>& a,
                         const torch::OrderedDict<std::string, torch::Tensor>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].key(), b[i].key()) << what;
    EXPECT_TRUE(torch::equal(a[i].value(), b[i].value())) << what << " " << a[i].key() << " differs";
  }
}

void expect_same_training_state(const std::string& path_a, const std::string& path_b) {
  SCOPED_TRACE(path_a + " vs " + path_b);
  const Restored a = restore(path_a), b = restore(path_b);
  EXPECT_EQ(a.meta.step, b.meta.step);
  EXPECT_EQ(a.meta.loader_epoch, b.meta.loader_epoch);
  EXPECT_EQ(a.meta.loader_position, b.meta.loader_position);
  EXPECT_TRUE(torch::equal(a.meta.rng_state, b.meta.rng_state));
  EXPECT_TRUE(torch::equal(a.meta.default_rng_state, b.meta.default_rng_state));
  expect_same_tensors(a.model->named_parameters(), b.model->named_parameters(), "model");
  expect_same_tensors(a.ema->named_parameters(), b.ema->named_parameters(), "ema");
  const auto params_a = a.model->parameters(), params_b = b.model->parameters();
  ASSERT_EQ(params_a.size(), params_b.size());
  for (size_t i = 0; i < params_a.size(); ++i) {
    const auto& sa = adam_state(a.optimizer->state(), params_a[i]);
    const auto& sb = adam_state(b.optimizer->state(), params_b[i]);
    EXPECT_EQ(sa.step(), sb.step()) << "param " << i;
    EXPECT_TRUE(torch::equal(sa.exp_avg(), sb.exp_avg())) << "exp_avg of param " << i;
    EXPECT_TRUE(torch::equal(sa.exp_avg_sq(), sb.exp_avg_sq())) << "exp_avg_sq of param " << i;
  }
}

std::string error_text(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const CheckpointError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a CheckpointError: ") + e.what();
  }
  return "no exception";
}


}  // namespace

// grad_accum, log_every: with log_every 3 the checkpoints at steps 1 and 4 fall inside a
// logging window, which the checkpoint must carry for the rows to match.
class ExactResume : public TrainerTest, public ::testing::WithParamInterface<std::tuple<int, int>> {};

TEST_P(ExactResume, StoppedAndResumedRunsMatchAnUninterruptedOne) {
  const int grad_accum = std::get<0>(GetParam());
  const int log_every = std::get<1>(GetParam());
  auto with_params = [&](ExperimentConfig c) {
    c.train.grad_accum = grad_accum;
    c.train.log_every = log_every;
    return c;
  };

  // A: 8 steps without a stop (checkpoints at 4 and 8).
  const ExperimentConfig a = with_params(config("a"));
  const TrainResult ra = train(a, {});
  ASSERT_EQ(ra.step, 8);
  EXPECT_FALSE(ra.interrupted);
  const auto rows_a = read_metrics(fs::path(a.run_dir) / "metrics.jsonl");
  ASSERT_EQ(rows_a.size(), static_cast<size_t>((8 + log_every - 1) / log_every));
  EXPECT_EQ(rows_a.back().step, 8);

  // B: a stop request (as from SIGINT) ends the run after its first step with a checkpoint;
  // resuming from it finishes the same 8 steps.
  const ExperimentConfig b = with_params(config("b"));
  std::atomic<bool> stop{true};
  TrainerOptions stopping;
  stopping.stop_requested = &stop;
  const TrainResult rb1 = train(b, stopping);
  EXPECT_TRUE(rb1.interrupted);
  ASSERT_EQ(rb1.step, 1);
  const std::string b_last = (fs::path(b.run_dir) / "ckpt" / "last.pt").string();
  ASSERT_EQ(rb1.last_checkpoint, b_last);
  // Mid-epoch, at the sample after one step's grad_accum batches of 4.
  EXPECT_EQ(CheckpointReader(b_last).meta().loader_position, grad_accum * 4);
  TrainerOptions resume_b;
  resume_b.resume = b_last;
  const TrainResult rb2 = train(b, resume_b);
  EXPECT_EQ(rb2.step, 8);
  expect_same_metrics(rows_a, read_metrics(fs::path(b.run_dir) / "metrics.jsonl"));
  expect_same_training_state((fs::path(a.run_dir) / "ckpt" / "last.pt").string(), b_last);

  // C: a copy of A resumed from its mid-epoch step-4 checkpoint: the rows after step 4 are
  // dropped and written again, identically.
  ExperimentConfig c = with_params(config("c"));
  fs::copy(a.run_dir, c.run_dir, fs::copy_options::recursive);
  const std::string c_step4 = (fs::path(c.run_dir) / "ckpt" / "step_4.pt").string();
  const CheckpointMeta meta4 = CheckpointReader(c_step4).meta();
  EXPECT_EQ(meta4.step, 4);
  EXPECT_EQ(meta4.loader_epoch * 6 * 4 + meta4.loader_position, 4 * grad_accum * 4);  // epochs of 6 batches of 4
  EXPECT_NE(meta4.loader_position, 0) << "the step-4 checkpoint should land mid-epoch";
  TrainerOptions resume_c;
  resume_c.resume = c_step4;
  EXPECT_EQ(train(c, resume_c).step, 8);
  expect_same_metrics(rows_a, read_metrics(fs::path(c.run_dir) / "metrics.jsonl"));
  expect_same_training_state((fs::path(a.run_dir) / "ckpt" / "last.pt").string(),
                             (fs::path(c.run_dir) / "ckpt" / "last.pt").string());
}

INSTANTIATE_TEST_SUITE_P(Trainer, ExactResume,
                         ::testing::Values(std::make_tuple(1, 1), std::make_tuple(2, 3)),
                         [](const auto& param_info) {
                           return "accum" + std::to_string(std::get<0>(param_info.param)) + "_log" +
                                  std::to_string(std::get<1>(param_info.param));
                         });

TEST_F(TrainerTest, TwoFreshRunsInOneProcessAgree) {
  // Weight init draws from LibTorch's default generator; the trainer seeds it from
  // train.seed, so what ran earlier in the process does not matter.
  ExperimentConfig a = config("a"), b = config("b");
  a.train.steps = b.train.steps = 2;
  train(a, {});
  (void)torch::randn({100});  // disturb the default generator between the runs
  train(b, {});
  expect_same_metrics(read_metrics(fs::path(a.run_dir) / "metrics.jsonl"),
                      read_metrics(fs::path(b.run_dir) / "metrics.jsonl"));
  expect_same_training_state(a.run_dir + "/ckpt/last.pt", b.run_dir + "/ckpt/last.pt");
  // A different seed is a different run.
  ExperimentConfig other = config("other");
  other.train.steps = 2;
  other.train.seed = 6;
  train(other, {});
  EXPECT_NE(read_metrics(fs::path(a.run_dir) / "metrics.jsonl").front().loss,
            read_metrics(fs::path(other.run_dir) / "metrics.jsonl").front().loss);
}

TEST_F(TrainerTest, KeepsLastAndTheNewestNumberedCheckpoints) {
  ExperimentConfig c = config("run");
  c.train.steps = 7;
  c.train.ckpt_every = 2;
  c.train.keep = 2;
  c.train.log_every = 10;
  const TrainResult r = train(c, {});
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(fs::path(c.run_dir) / "ckpt"))
    names.insert(entry.path().filename().string());
  // Checkpoints at 2, 4, 6 and the final 7; the two newest numbered ones stay.
  EXPECT_EQ(names, (std::set<std::string>{"last.pt", "step_6.pt", "step_7.pt"}));
  EXPECT_EQ(CheckpointReader(r.last_checkpoint).meta().step, 7);
  // metrics.jsonl: the rows at 7 (the last step) only, as log_every is 10.
  const auto rows = read_metrics(fs::path(c.run_dir) / "metrics.jsonl");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].step, 7);
  EXPECT_TRUE(fs::exists(fs::path(c.run_dir) / "config.yaml"));

  ExperimentConfig none = config("none");
  none.train.steps = 3;
  none.train.ckpt_every = 1;
  none.train.keep = 0;
  train(none, {});
  names.clear();
  for (const auto& entry : fs::directory_iterator(fs::path(none.run_dir) / "ckpt"))
    names.insert(entry.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"last.pt"}));
}

TEST_F(TrainerTest, CheckpointErrorsNameThePathAndTheProblem) {
  ExperimentConfig c = config("run");
  c.train.steps = 1;
  const std::string ckpt = train(c, {}).last_checkpoint;
  CheckpointReader reader(ckpt);
  EXPECT_EQ(reader.meta().step, 1);
  EXPECT_TRUE(reader.has_ema());

  // A wider network: the first parameter whose shape differs is named with both shapes.
  ConfigNode root = ConfigNode::load_string(reader.meta().config_yaml, ckpt);
  const ModelOptions trained = parse_experiment_config(root).model;
  ModelOptions wider = trained;
  wider.unet.base_channels = 24;
  auto ours = make_model(trained), theirs = make_model(wider);
  const auto ours_params = ours->named_parameters(), theirs_params = theirs->named_parameters();
  std::string first_key;
  torch::IntArrayRef checkpoint_shape, model_shape;
  for (const auto& p : theirs_params) {
    const auto* in_ckpt = ours_params.find(p.key());
    ASSERT_NE(in_ckpt, nullptr) << p.key();
    if (in_ckpt->sizes() != p.value().sizes()) {
      first_key = p.key();
      checkpoint_shape = in_ckpt->sizes();
      model_shape = p.value().sizes();
      break;
    }
  }
  ASSERT_FALSE(first_key.empty());
  const std::string mismatch = error_text([&] { reader.load_module("model", *theirs); });
  EXPECT_CONTAINS(mismatch, ckpt);
  EXPECT_CONTAINS(mismatch, "'" + first_key + "'");
  EXPECT_CONTAINS(mismatch, shape_text(checkpoint_shape) + " in the checkpoint but " + shape_text(model_shape));

  // A deeper network: a key the checkpoint lacks.
  ModelOptions deeper = trained;
  deeper.unet.num_res_blocks = 2;
  auto deep = make_model(deeper);
  const std::string missing = error_text([&] { reader.load_module("ema", *deep); });
  EXPECT_CONTAINS(missing, ckpt);
  EXPECT_CONTAINS(missing, ": ema weight");

  // Half of the file.
  const std::string bytes = test::read_file(ckpt);
  const std::string truncated = dir.file("truncated.pt");
  test::write_file(truncated, bytes.substr(0, bytes.size() / 2));
  std::string text = error_text([&] { CheckpointReader r(truncated); });
  EXPECT_CONTAINS(text, truncated + ": not a readable checkpoint");
  text = error_text([&] { load_model_for_inference(truncated, true, torch::kCPU); });
  EXPECT_CONTAINS(text, truncated + ": not a readable checkpoint");

  // Random bytes.
  const std::string noise = dir.file("noise.pt");
  std::string random_bytes(4096, '\0');
  uint64_t state = 12345;
  for (auto& ch : random_bytes) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    ch = static_cast<char>(state >> 56);
  }
  test::write_file(noise, random_bytes);
  EXPECT_CONTAINS(error_text([&] { CheckpointReader r(noise); }), noise + ": not a readable checkpoint");

  // A valid LibTorch archive written by someone else.
  const std::string foreign = dir.file("foreign.pt");
  torch::serialize::OutputArchive archive;
  archive.write("weights", torch::ones({3}));
  archive.save_to(foreign);
  text = error_text([&] { load_model_for_inference(foreign, true, torch::kCPU); });
  EXPECT_CONTAINS(text, foreign + ": not a diffuse checkpoint");

  const std::string absent = dir.file("absent.pt");
  EXPECT_CONTAINS(error_text([&] { CheckpointReader r(absent); }), absent + ": checkpoint file not found");

  // Resuming a different architecture from the config fails the same way, before any step.
  ExperimentConfig other = config("other");
  other.model.unet.base_channels = 24;
  TrainerOptions resume;
  resume.resume = ckpt;
  text = error_text([&] { train(other, resume); });
  EXPECT_CONTAINS(text, ckpt + ": model weight '");
  EXPECT_FALSE(fs::exists(fs::path(other.run_dir) / "metrics.jsonl"));
}

TEST(LearningRate, WarmupThenConstant) {
  TrainOptions o;
  o.lr = 1e-3;
  o.warmup_steps = 10;
  o.steps = 100;
  o.lr_schedule = LrSchedule::constant;
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 0), 1e-4);  // step 0 already moves: (0 + 1)/10
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 4), 5e-4);
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 9), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 10), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 99), 1e-3);
  o.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 0), 1e-3);
}

TEST(LearningRate, WarmupThenHalfCosineToTheFloor) {
  TrainOptions o;
  o.lr = 1e-3;
  o.min_lr = 1e-5;
  o.warmup_steps = 10;
  o.steps = 110;
  o.lr_schedule = LrSchedule::cosine;
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 0), 1e-4);
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 9), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 10), 1e-3);                    // cosine starts at the peak
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 60), 0.5 * (1e-3 + 1e-5));     // halfway
  EXPECT_NEAR(learning_rate_at(o, 35), 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + std::cos(M_PI / 4)), 1e-15);
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 110), 1e-5);
  EXPECT_DOUBLE_EQ(learning_rate_at(o, 500), 1e-5);                   // clamped past the end
  for (int64_t s = 11; s < 110; ++s) EXPECT_LT(learning_rate_at(o, s), learning_rate_at(o, s - 1)) << s;
}
