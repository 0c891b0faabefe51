// The bad-input suite: a table of configs, --set overrides, flags, image files and
// checkpoints that diffuse must refuse, each with its exit code (1: error, 2: usage) and a
// fragment of the message. Every row must fail at once with one `error: ` line (a usage
// error adds the --help hint), print nothing of a third-party library, and leave its output
// folder unwritten. Rows run in forked copies of this process (run_diffuse_forked), which
// give the binary's exit code and output without its start-up.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "diffuse/io/image_io.h"
#include "support/expect_text.h"
#include "support/run_command.h"
#include "support/test_paths.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

// Placeholders in rows: @D@ the suite's folder, @GOOD@ a valid config (8×8 random data, a
// tiny UNet), @CKPT@ its 1-step checkpoint, @LATENT@ a 4-channel model's checkpoint, @UNCOND@
// an unconditional one's, @NODROP@ one trained without label dropout, @VAE@ a VAE file of
// 4-channel latents, @TASK@
// the denoise restore task, @FILE@ the row's own file (its `file` text), @OUT@ an output path
// that must not exist afterwards.
struct Row {
  std::vector<std::string> args;
  int exit_code;
  std::string fragment;
  std::string file;  // written to @FILE@ when not empty
};

constexpr const char* kGoodConfig = R"(name: good
run_dir: @D@/runs/good
data: {type: random, resolution: 8, channels: 1, limit: 16, num_workers: 0}
model:
  arch: unet
  unet: {base_channels: 16, channel_mult: [1, 2], num_res_blocks: 1, attention_resolutions: [], num_groups: 8}
diffusion: {timesteps: 50, p_uncond: 0.1}
train: {steps: 1, batch_size: 4, device: cpu, precision: fp32, log_every: 1, sample_every: 0, ckpt_every: 1}
)";


std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
  return text;
}

void put_be32(std::string& bytes, size_t pos, uint32_t value) {
  for (int i = 0; i < 4; ++i) bytes[pos + static_cast<size_t>(i)] = static_cast<char>(value >> (24 - 8 * i));
}

// A PNG whose IHDR claims width × height, with a valid CRC so that only the size is wrong.
std::string png_claiming(std::string png, uint32_t width, uint32_t height) {
  put_be32(png, 16, width);
  put_be32(png, 20, height);
  const auto crc = crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(png.data() + 12), 17);
  put_be32(png, 29, static_cast<uint32_t>(crc));
  return png;
}

class BadInput : public ::testing::Test {
 protected:
  struct Shared {
    test::TempDir dir;
    std::map<std::string, std::string> values;  // placeholder -> text
  };

  static void SetUpTestSuite() { shared_ = new Shared; }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }

  static std::string dir() { return shared_->dir.path().string(); }

  static std::string good_config() {
    auto& v = shared_->values;
    if (!v.count("@GOOD@")) {
      v["@GOOD@"] = dir() + "/good.yaml";
      test::write_file(v["@GOOD@"], replace_all(kGoodConfig, "@D@", dir()));
    }
    return v["@GOOD@"];
  }

  // Trains the good config (1 step) into runs/NAME, with `sets`; its last checkpoint.
  static std::string trained(const std::string& name, const std::vector<std::string>& sets) {
    std::vector<std::string> args{"train", "--config", good_config(), "--set", "run_dir=" + dir() + "/runs/" + name,
                                  "--threads", "1"};
    for (const auto& set : sets) args.insert(args.end(), {"--set", set});
    const auto r = test::run_diffuse_forked(args);
    if (r.exit_code != 0) throw std::runtime_error("training '" + name + "' failed: " + r.err);
    return dir() + "/runs/" + name + "/ckpt/last.pt";
  }

  static void need_checkpoints() {
    auto& v = shared_->values;
    if (v.count("@CKPT@")) return;
    v["@CKPT@"] = trained("ckpt", {});
    v["@LATENT@"] = trained("latent", {"data.channels=4"});
    v["@UNCOND@"] = trained("uncond", {"model.num_classes=0"});
    v["@NODROP@"] = trained("nodrop", {"diffusion.p_uncond=0"});
    v["@TASK@"] = (test::source_dir() / "configs" / "restore" / "denoise.yaml").string();
    v["@DISTILL@"] = (test::source_dir() / "configs" / "distill" / "sds_pixels.yaml").string();
    v["@VAE@"] = dir() + "/vae.safetensors";
    const auto r = test::run_diffuse_forked({"import", "--from", "diffusers-vae", "--weights",
                                             (test::source_dir() / "tests/data/interop/diffusers_vae").string(),
                                             "--out", v["@VAE@"]});
    if (r.exit_code != 0) throw std::runtime_error("importing the test VAE failed: " + r.err);
  }

  static std::string substitute(std::string text, const std::string& file, const std::string& out) {
    text = replace_all(text, "@FILE@", file);
    text = replace_all(text, "@OUT@", out);
    if (text.find("@GOOD@") != std::string::npos) good_config();
    for (const auto& [key, value] : shared_->values) text = replace_all(text, key, value);
    return replace_all(text, "@D@", dir());
  }

  // Runs every row and checks exit code, message and the one-line promise.
  static void check_rows(const std::string& group, const std::vector<Row>& rows) {
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& row = rows[i];
      const std::string file = dir() + "/" + group + "_" + std::to_string(i) + ".yaml";
      const std::string out = dir() + "/out/" + group + "_" + std::to_string(i);
      if (!row.file.empty()) test::write_file(file, substitute(row.file, file, out));
      std::vector<std::string> args;
      std::string shown;
      for (const auto& arg : row.args) {
        args.push_back(substitute(arg, file, out));
        shown += " " + arg;
      }
      SCOPED_TRACE(group + " row " + std::to_string(i) + ":" + shown);
      const auto start = std::chrono::steady_clock::now();
      const auto r = test::run_diffuse_forked(args);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      EXPECT_EQ(r.exit_code, row.exit_code) << r.err << r.out.substr(0, 2000);
      EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
      EXPECT_EQ(test::line_count(r.err), row.exit_code == 2 ? 2u : 1u) << r.err;
      EXPECT_CONTAINS(r.err, substitute(row.fragment, file, out));
      EXPECT_FALSE(fs::exists(out)) << "written although the command failed: " << out;
      EXPECT_LT(seconds, 60.0) << "bad input must fail at once";
    }
  }

  static Shared* shared_;
};

BadInput::Shared* BadInput::shared_ = nullptr;

// `diffuse info --config` of a file holding `text`.
Row config_row(const std::string& text, const std::string& fragment) {
  return {{"info", "--config", "@FILE@"}, 1, fragment, text};
}

// `diffuse info --config GOOD --set assignment`.
Row set_row(const std::string& assignment, const std::string& fragment) {
  return {{"info", "--config", "@GOOD@", "--set", assignment}, 1, fragment, ""};
}

// The same with the good config turned into a classifier's.
Row classifier_set_row(const std::string& assignment, const std::string& fragment) {
  return {{"info", "--config", "@GOOD@", "--set", "model.arch=classifier", "--set", assignment}, 1, fragment, ""};
}

// `diffuse train` of the good config into @OUT@ with `sets`: failures past parsing.
Row train_row(const std::vector<std::string>& sets, const std::string& fragment) {
  Row row{{"train", "--config", "@GOOD@", "--threads", "1", "--set", "run_dir=@OUT@"}, 1, fragment, ""};
  for (const auto& set : sets) row.args.insert(row.args.end(), {"--set", set});
  return row;
}

// `diffuse sample` of the good checkpoint with `flags`.
Row sample_row(const std::vector<std::string>& flags, int exit_code, const std::string& fragment) {
  Row row{{"sample", "--checkpoint", "@CKPT@", "--out", "@OUT@"}, exit_code, fragment, ""};
  row.args.insert(row.args.end(), flags.begin(), flags.end());
  return row;
}

// `diffuse restore` of the good checkpoint on `input` (1 DPS step).
Row restore_row(const std::vector<std::string>& flags, int exit_code, const std::string& fragment) {
  Row row{{"restore", "--checkpoint", "@CKPT@", "--task", "@TASK@", "--set", "steps=1", "--out", "@OUT@"},
          exit_code, fragment, ""};
  row.args.insert(row.args.end(), flags.begin(), flags.end());
  return row;
}

// `diffuse invert` of the good checkpoint on an image of its shape, with `flags`.
Row invert_row(const std::vector<std::string>& flags, int exit_code, const std::string& fragment) {
  Row row{{"invert", "--checkpoint", "@CKPT@", "--input", "@D@/good.png", "--steps", "1", "--out", "@OUT@"},
          exit_code, fragment, ""};
  row.args.insert(row.args.end(), flags.begin(), flags.end());
  return row;
}

// `diffuse distill` of the good checkpoint with one SDS step of one particle, with `flags`.
Row distill_row(const std::vector<std::string>& flags, int exit_code, const std::string& fragment) {
  Row row{{"distill", "--checkpoint", "@CKPT@", "--config", "@DISTILL@", "--set", "steps=1", "--set", "particles=1",
           "--out", "@OUT@"},
          exit_code, fragment, ""};
  row.args.insert(row.args.end(), flags.begin(), flags.end());
  return row;
}

}  // namespace

TEST_F(BadInput, Configs) {
  const std::string data = "data: {type: random, resolution: 8, channels: 1}\n";
  std::vector<Row> rows{
      // The unclosed quote at the end of the file: yaml-cpp 0.7 took it, and the run trained.
      {{"train", "--config", "@FILE@"}, 1, "@FILE@:3:", data + "run_dir: @OUT@\nname: \"abc\n"},
      {{"train", "--config", "@FILE@"}, 1, "invalid YAML", data + "run_dir: @OUT@\nname: 'abc\n"},
      config_row("name: \"abc\ndata:\n  type: idx\n", "invalid YAML"),
      config_row("name: \"abc\n# a comment\n\n", "invalid YAML"),
      config_row("name: a\nname: b\n", "@FILE@:2:1: name: duplicate key (first given at line 1)"),
      config_row("train:\n  lr: 0.1\n  lr: 0.2\n", "train.lr: duplicate key"),
      config_row("train:\n  lr: 0.1\ntrain:\n  steps: 2\n", "@FILE@:3:1: train: duplicate key"),
      config_row("data: {type: idx, type: cifar10}\n", "data.type: duplicate key"),
      config_row("data:\n  - type: idx\n", "data: expected a mapping of keys, found a list"),
      config_row("train:\n  sample:\n    - sampler: ddim\n", "train.sample: expected a mapping of keys, found a list"),
      config_row("model: unet\n", "model: expected a mapping of keys, found 'unet'"),
      config_row("name: a\n---\nname: b\n", "holds 2 YAML documents"),
      config_row("---\nname: a\n---\n---\n", "YAML documents"),
      config_row("name: caf\xe9\n", "@FILE@:1:10: invalid UTF-8 (byte 0xE9)"),
      config_row("# r\xe9sum\xe9\nname: a\n", "@FILE@:1:4: invalid UTF-8"),
      config_row("name: \xc0\xaf\n", "invalid UTF-8 (byte 0xC0)"),
      config_row("name: \xed\xa0\x80\n", "invalid UTF-8 (byte 0xED)"),
      config_row("name: \xf4\x90\x80\x80\n", "invalid UTF-8 (byte 0xF4)"),
      config_row("name: ab\xe2\x82", "invalid UTF-8 (byte 0xE2)"),
      config_row("name: \xff\xfe\n", "invalid UTF-8 (byte 0xFF)"),
      {{"info", "--config", "@D@"}, 1, "@D@: is a folder, not a config file", ""},
      {{"train", "--config", "@D@"}, 1, "@D@: is a folder, not a config file", ""},
      {{"info", "--config", "@D@/fifo"}, 1, "is not a regular file", ""},
      {{"info", "--config", "/dev/null"}, 1, "/dev/null: is not a regular file", ""},
      {{"info", "--config", "@D@/absent.yaml"}, 1, "@D@/absent.yaml: config file not found", ""},
      {{"train", "--config", ""}, 1, "config file not found", ""},
      config_row("? [1, 2]\n: 3\n", "top level: a key must be a plain name, found a list"),
      config_row("train:\n  ? {a: 1}\n  : 3\n", "train: a key must be a plain name, found a mapping"),
      config_row("1: 2\n", "unknown key '1'"),
      config_row("- a\n- b\n", "expected a mapping of keys at the top level, found a list"),
      config_row("hello\n", "expected a mapping of keys at the top level, found 'hello'"),
      config_row("data:\n\ttype: idx\n", "invalid YAML"),
      config_row("name: [a\n", "invalid YAML"),
      config_row("nmae: x\n", "unknown key 'nmae'"),
      config_row("train:\n  lrr: 1\n", "@FILE@:2:3: unknown key 'train.lrr'"),
      config_row("name: [a]\n", "name: expected a string, found a list"),
      config_row("run_dir: {a: 1}\n", "run_dir: expected a string, found a mapping"),
      // train:
      config_row("train:\n  lr: 1e400\n", "@FILE@:2:3: train.lr: expected a finite number, found '1e400' (infinite)"),
      config_row("train:\n  lr: .inf\n", "train.lr: expected a finite number, found '.inf'"),
      config_row("train:\n  lr: .nan\n", "train.lr: expected a finite number, found '.nan'"),
      config_row("train:\n  lr: nan\n", "found 'nan' (not a number)"),
      config_row("train:\n  lr: -inf\n", "found '-inf' (infinite)"),
      config_row("train:\n  lr: -1\n", "train.lr: must lie in (0, 10.0], found -1.0"),
      config_row("train:\n  lr: 0\n", "train.lr: must lie in (0, 10.0], found 0.0"),
      config_row("train:\n  lr: abc\n", "train.lr: expected a finite number, found 'abc'"),
      config_row("train:\n  lr: [1]\n", "train.lr: expected a number, found a list"),
      config_row("train:\n  steps: 99999999999999999999\n", "train.steps: integer '99999999999999999999' does not fit in 64 bits"),
      config_row("train:\n  steps: 0\n", "train.steps: must be an integer in [1, 1000000000000], found 0"),
      config_row("train:\n  steps: 1e13\n", "found 10000000000000"),
      config_row("train:\n  steps: 2.5\n", "train.steps: expected an integer"),
      config_row("train:\n  batch_size: 4294967298\n", "train.batch_size: integer 4294967298 does not fit in 32 bits"),
      config_row("train:\n  batch_size: 0\n", "train.batch_size: must be an integer in [1, 65536], found 0"),
      config_row("train:\n  batch_size: 100000\n", "found 100000"),
      config_row("train:\n  betas: [0.9]\n", "train.betas: expected two numbers in [0, 1)"),
      config_row("train:\n  betas: [0.9, nan]\n", "train.betas: item 1: expected numbers, found 'nan'"),
      config_row("train:\n  betas: [1.0, 0.999]\n", "train.betas: expected two numbers in [0, 1)"),
      config_row("train:\n  weight_decay: -0.1\n", "train.weight_decay: must lie in [0.0, 10.0], found -0.1"),
      config_row("train:\n  adam_eps: 0\n", "train.adam_eps: must lie in (0, 1.0]"),
      config_row("train:\n  warmup_steps: -1\n", "train.warmup_steps: must be an integer in [0, "),
      config_row("train:\n  lr_schedule: linear\n", "unknown value 'linear'; valid values: constant, cosine"),
      config_row("train:\n  min_lr: 1\n", "train.min_lr: must lie in [0.0, 0.0002], found 1.0"),
      config_row("train:\n  grad_clip: -1\n", "train.grad_clip: must lie in [0.0, "),
      config_row("train:\n  grad_accum: 0\n", "train.grad_accum: must be an integer in [1, 1024]"),
      config_row("train:\n  ema_decay: 1.5\n", "train.ema_decay: must lie in [0.0, 1.0], found 1.5"),
      config_row("train:\n  ema_warmup: maybe\n", "train.ema_warmup: expected true or false, found 'maybe'"),
      config_row("train:\n  precision: fp16\n", "unknown value 'fp16'; valid values: fp32, bf16"),
      config_row("train:\n  device: cpu1\n", "train.device: unknown device 'cpu1'; valid devices: auto, cpu, cuda, cuda:N"),
      config_row("train:\n  device: cuda:x\n", "unknown device 'cuda:x'"),
      config_row("train:\n  device: tpu\n", "unknown device 'tpu'"),
      config_row("train:\n  device: cuda:1000\n", "unknown device 'cuda:1000'"),
      config_row("train:\n  seed: -1\n", "train.seed: must be an integer in [0, "),
      config_row("train:\n  log_every: 0\n", "train.log_every: must be an integer in [1, "),
      config_row("train:\n  sample_every: -5\n", "train.sample_every: must be an integer in [0, "),
      config_row("train:\n  ckpt_every: 0\n", "train.ckpt_every: must be an integer in [1, "),
      config_row("train:\n  keep: -1\n", "train.keep: must be an integer in [0, 1000], found -1"),
      config_row("train:\n  keep: 5000\n", "found 5000"),
      config_row("train:\n  num_threads: -1\n", "train.num_threads: must be an integer in [0, 1024], found -1"),
      config_row("train:\n  num_threads: 100000\n", "found 100000"),
      config_row("train:\n  channels_last: 2\n", "train.channels_last: expected true or false"),
      config_row("train:\n  sample:\n    sampler: fastest\n", "train.sample.sampler: unknown sampler 'fastest'; valid samplers: "),
      config_row("train:\n  sample:\n    steps: 0\n", "train.sample.steps: must be an integer in [1, 10000]"),
      config_row("train:\n  sample:\n    count: 0\n", "train.sample.count: must be an integer in [1, 1024]"),
      config_row("train:\n  sample:\n    count: 100000\n", "found 100000"),
      config_row("train:\n  sample:\n    cfg: nan\n", "train.sample.cfg: expected a finite number"),
      config_row("train:\n  sample:\n    cfg: -1\n", "train.sample.cfg: must lie in [0.0, 100.0], found -1.0"),
      config_row("train:\n  sample: [1]\n", "train.sample: expected a mapping of keys, found a list"),
      config_row("train:\n  sample:\n    bogus: 1\n", "unknown key 'train.sample.bogus'"),
      config_row("train:\n  eval_every: 10\n", "train.eval.features: train.eval_every 10 needs a feature network"),
      config_row("train:\n  eval_every: -1\n", "train.eval_every: must be an integer in [0, "),
      config_row("train:\n  eval:\n    samples: 2\n", "train.eval.samples: must be an integer in [4, 1000000], found 2"),
      config_row("train:\n  eval:\n    sampler: fastest\n", "train.eval.sampler: unknown sampler 'fastest'"),
      config_row("train:\n  eval:\n    steps: 0\n", "train.eval.steps: must be an integer in [1, 10000]"),
      config_row("train:\n  eval:\n    cfg: -2\n", "train.eval.cfg: must lie in [0.0, 100.0], found -2.0"),
      config_row("train:\n  eval:\n    bogus: 1\n", "unknown key 'train.eval.bogus'"),
      // data:
      config_row("data:\n  type: png\n", "data.type: unknown value 'png'; valid values: idx, cifar10"),
      config_row("data:\n  split: validation\n", "data.split: unknown value 'validation'; valid values: train, test"),
      config_row("data:\n  resolution: 1\n", "data.resolution: must be 0 (the native size) or an integer in [2, 4096], found 1"),
      config_row("data:\n  resolution: 100000\n", "data.resolution: must be 0 (the native size) or an integer in [2, 4096], found 100000"),
      config_row("data:\n  resolution: -3\n", "found -3"),
      config_row("data:\n  channels: 2\n", "data.channels: must be 0 (native), 1 or 3 for idx images, found 2"),
      config_row("data:\n  type: cifar10\n  channels: 4\n", "1 or 3 for cifar10 images, found 4"),
      config_row("data:\n  type: random\n  channels: 5000\n", "data.channels: must be 0 (the native channels) or an integer in [1, 1024]"),
      config_row("data:\n  limit: -1\n", "data.limit: must be an integer in [0, "),
      config_row("data:\n  num_workers: -1\n", "data.num_workers: must be an integer in [0, 64]"),
      config_row("data:\n  num_workers: 1000\n", "found 1000"),
      config_row("data:\n  prefetch_batches: 0\n", "data.prefetch_batches: must be an integer in [1, 1024]"),
      config_row("data:\n  hflip: 1\n", "data.hflip: expected true or false, found '1'"),
      config_row("data:\n  path: [a]\n", "data.path: expected a string, found a list"),
      // model:
      config_row("model:\n  arch: resnet\n", "model.arch: unknown value 'resnet'; valid values: unet, dit"),
      config_row("model:\n  preset: unet_huge\n", "unknown model preset 'unet_huge'"),
      config_row("model:\n  arch: dit\n  preset: unet_small\n", "'unet_small' is a unet preset but model.arch is dit"),
      config_row("model:\n  arch: unet\n  preset: dit_s_2\n", "'dit_s_2' is a dit preset but model.arch is unet"),
      config_row("model:\n  in_channels: -1\n", "model.in_channels: must be 0 (from the dataset) or an integer in [1, 1024]"),
      config_row("model:\n  image_size: 1\n", "model.image_size: must be 0 (from the dataset) or an integer in [2, 4096], found 1"),
      config_row("model:\n  image_size: 100000\n", "found 100000"),
      config_row("model:\n  num_classes: -2\n", "model.num_classes: must be -1 (from the dataset)"),
      config_row("model:\n  learn_sigma: maybe\n", "model.learn_sigma: expected true or false"),
      config_row("model:\n  unet:\n    base_channels: 0\n", "model.unet.base_channels: must be an integer in [1, 4096]"),
      config_row("model:\n  unet:\n    channel_mult: []\n", "model.unet.channel_mult: must list 1 to 8 multipliers, found 0"),
      config_row("model:\n  unet:\n    channel_mult: [1, 0]\n", "multipliers must lie in [1, 64], found 0"),
      config_row("model:\n  unet:\n    channel_mult: [1, 2, 2, 2, 2, 2, 2, 2, 2]\n", "must list 1 to 8 multipliers, found 9"),
      config_row("model:\n  unet:\n    channel_mult: 2\n", "model.unet.channel_mult: expected a list of integers, found '2'"),
      config_row("model:\n  unet:\n    num_res_blocks: 0\n", "model.unet.num_res_blocks: must be an integer in [1, 64]"),
      config_row("model:\n  unet:\n    attention_resolutions: [0]\n", "sizes must lie in [1, 4096], found 0"),
      config_row("model:\n  unet:\n    num_heads: 0\n", "model.unet.num_heads: must be an integer in [1, 1024]"),
      config_row("model:\n  unet:\n    head_channels: 0\n", "model.unet.head_channels: must be -1 (use num_heads)"),
      config_row("model:\n  unet:\n    dropout: 1.0\n", "model.unet.dropout: must lie in [0.0, 0.99], found 1.0"),
      config_row("model:\n  unet:\n    num_groups: 0\n", "model.unet.num_groups: must be an integer in [1, 1024]"),
      config_row("model:\n  dit:\n    depth: 0\n", "model.dit.depth: must be an integer in [1, 1024]"),
      config_row("model:\n  dit:\n    hidden_size: 100\n", "model.dit.hidden_size: must be a positive multiple of num_heads (6), found 100"),
      config_row("model:\n  dit:\n    patch_size: 0\n", "model.dit.patch_size: must be an integer in [1, 64]"),
      config_row("model:\n  dit:\n    mlp_ratio: 0\n", "model.dit.mlp_ratio: must lie in (0, 64.0]"),
      // diffusion:
      config_row("diffusion:\n  schedule: vp_sqrt\n", "diffusion.schedule: unknown value 'vp_sqrt'"),
      config_row("diffusion:\n  timesteps: 2000000000\n", "diffusion.timesteps: must be an integer in [2, 100000], found 2000000000"),
      config_row("diffusion:\n  timesteps: 1\n", "diffusion.timesteps: must be an integer in [2, 100000], found 1"),
      config_row("diffusion:\n  beta_start: 0\n", "diffusion.beta_start: must lie in [1e-12, 0.999]"),
      config_row("diffusion:\n  beta_end: 0.00001\n", "diffusion.beta_end: must lie in [0.0001, 0.999]"),
      config_row("diffusion:\n  cosine_s: -1\n", "diffusion.cosine_s: must lie in [0.0, 1.0]"),
      config_row("diffusion:\n  max_beta: 1\n", "diffusion.max_beta: must lie in [1e-06, 0.9999]"),
      config_row("diffusion:\n  sigma_min: 0\n", "diffusion.sigma_min: must lie in (0, 1000.0]"),
      config_row("diffusion:\n  sigma_max: 0.001\n", "diffusion.sigma_max: must lie in (sigma_min = 0.002, 1e6]"),
      config_row("diffusion:\n  sigma_data: inf\n", "diffusion.sigma_data: expected a finite number, found 'inf' (infinite)"),
      config_row("diffusion:\n  prediction: score\n", "diffusion.prediction: unknown value 'score'"),
      config_row("diffusion:\n  weighting: snr\n", "diffusion.weighting: unknown value 'snr'"),
      config_row("diffusion:\n  min_snr_gamma: 0\n", "diffusion.min_snr_gamma: must lie in (0, 1000000.0]"),
      config_row("diffusion:\n  p_mean: 100\n", "diffusion.p_mean: must lie in [-20.0, 20.0], found 100.0"),
      config_row("diffusion:\n  p_std: 0\n", "diffusion.p_std: must lie in (0, 20.0]"),
      config_row("diffusion:\n  p_uncond: 1.5\n", "diffusion.p_uncond: must lie in [0.0, 1.0], found 1.5"),
      config_row("diffusion:\n  vlb_weight: -1\n", "diffusion.vlb_weight: must lie in [0.0, "),
      config_row("diffusion:\n  schedule: edm\n  prediction: eps\n", "schedule 'edm' needs prediction 'edm'"),
      config_row("model:\n  learn_sigma: true\ndiffusion:\n  schedule: edm\n", "learn_sigma needs a VP schedule"),
      // Past parsing, still before the first step.
      train_row({"model.unet.channel_mult=[1,1,1,1,1]"}, "model.unet.channel_mult has 5 levels, but a 8x8 image is down to 1 pixel after 3 halvings"),
      train_row({"model.arch=dit", "model.dit.patch_size=3", "model.dit.depth=1", "model.dit.hidden_size=12", "model.dit.num_heads=2"},
                "model.dit.patch_size 3 does not divide model.image_size 8"),
      train_row({"model.unet.num_groups=5"}, "model.unet.num_groups (5) must divide every channel count"),
      train_row({"diffusion.schedule=edm", "train.sample_every=1", "train.sample.sampler=ddpm"},
                "sampler 'ddpm' walks the discrete VP grid"),
      train_row({"data.type=idx", "data.path=@D@/no-such-folder"}, "@D@/no-such-folder"),
  };
  ASSERT_EQ(::mkfifo((dir() + "/fifo").c_str(), 0600), 0);
  check_rows("config", rows);
}

TEST_F(BadInput, Overrides) {
  const std::vector<Row> rows{
      set_row("train.lr=1e400", "--set train.lr: train.lr: expected a finite number, found '1e400' (infinite)"),
      set_row("train.lr=nan", "--set train.lr: train.lr: expected a finite number"),
      set_row("train.lr", "--set train.lr: expected key.path=value"),
      set_row("=3", "--set =3: expected key.path=value"),
      set_row("train..lr=1", "empty key in path"),
      // Blamed on the --set, not on the base config file.
      set_row("foo.bar=1", "--set foo.bar: unknown key 'foo'"),
      set_row("train.nope=1", "--set train.nope: unknown key 'train.nope'"),
      set_row("train.sample.nope=1", "--set train.sample.nope: unknown key 'train.sample.nope'"),
      set_row("train.steps.x=1", "'train.steps' is a value, not a section"),
      set_row("train=[1]", "--set train: train: expected a mapping of keys, found a list"),
      set_row("train.lr=\"abc", "--set train.lr=\"abc: value is not valid"),
      set_row("name=a\n---\nb", "YAML documents"),
      set_row("train={lr: 1, lr: 2}", "duplicate key"),
      set_row("name=caf\xe9", "invalid UTF-8"),
      set_row("train.steps=99999999999999999999", "--set train.steps: train.steps: integer '99999999999999999999' does not fit in 64 bits"),
      set_row("train.steps=-4", "--set train.steps: train.steps: must be an integer in [1, "),
      set_row("data.resolution=100000", "--set data.resolution: data.resolution: must be 0 (the native size) or an integer in [2, 4096]"),
      set_row("diffusion.timesteps=2000000000", "--set diffusion.timesteps: diffusion.timesteps: must be an integer in [2, 100000]"),
      set_row("train.sample.sampler=fastest", "--set train.sample.sampler: train.sample.sampler: unknown sampler 'fastest'"),
      set_row("train.device=cpu1", "unknown device 'cpu1'"),
      set_row("model.unet.channel_mult=[1, nan]", "item 1: expected integers, found 'nan'"),
      set_row("model.preset=dit_s_2", "'dit_s_2' is a dit preset but model.arch is unet"),
      // The formalisms' keys (VE, flow, classifier) and the CUDA keys.
      set_row("diffusion.schedule=vp_log", "diffusion.schedule: unknown value 'vp_log'"),
      set_row("diffusion.shift=2", "diffusion.shift: applies to schedule 'flow' only"),
      set_row("diffusion.shift=nan", "diffusion.shift: expected a finite number"),
      set_row("diffusion.sigma_distribution=uniform_t", "'uniform_t' draws the flow time t; it needs schedule 'flow'"),
      set_row("diffusion.sigma_distribution=gaussian", "diffusion.sigma_distribution: unknown value 'gaussian'"),
      set_row("diffusion.prediction=velocity", "diffusion.prediction: unknown value 'velocity'"),
      set_row("classifier.noise=none", "--set classifier.noise: classifier: applies to model.arch 'classifier' only"),
      classifier_set_row("classifier.noise=loud", "classifier.noise: unknown value 'loud'; valid values: noisy, none"),
      classifier_set_row("classifier.eval_sigmas=[0, -1]", "classifier.eval_sigmas: σ values must lie in [0, 1e6], found -1"),
      classifier_set_row("classifier.eval_batches=-1", "classifier.eval_batches: must be an integer in [0, "),
      set_row("train.fused_adamw=maybe", "train.fused_adamw: expected true or false"),
      set_row("train.cuda_graph=1.5", "train.cuda_graph: expected true or false"),
  };
  check_rows("set", rows);
}

TEST_F(BadInput, Flags) {
  need_checkpoints();
  const std::vector<Row> rows{
      // diffuse train
      {{"train", "--steps", "5"}, 2, "unknown flag '--steps' for 'diffuse train'", ""},
      {{"train"}, 2, "'diffuse train' needs --config", ""},
      {{"train", "--config"}, 2, "flag --config needs a value (FILE)", ""},
      {{"train", "--config", "@GOOD@", "--threads", "4294967298"}, 2, "--threads: expected an integer in [0, 1024], found '4294967298'", ""},
      {{"train", "--config", "@GOOD@", "--threads", "-1"}, 2, "--threads: expected an integer in [0, 1024], found '-1'", ""},
      {{"train", "--config", "@GOOD@", "--threads", "abc"}, 2, "found 'abc'", ""},
      {{"train", "--config", "@GOOD@", "--threads", "100000"}, 2, "found '100000'", ""},
      {{"train", "--config", "@GOOD@", "--threads", "1e3"}, 2, "found '1e3'", ""},
      {{"train", "--config", "@GOOD@", "--resume", "@CKPT@", "--overwrite"}, 2, "not both", ""},
      {{"train", "--config", "@GOOD@", "--device", "cpu1"}, 2, "--device: unknown device 'cpu1'", ""},
      {{"train", "--config", "@GOOD@", "--log-level", "loud"}, 2, "--log-level: unknown level 'loud'", ""},
      {{"train", "--config", "@GOOD@", "--overwrite=yes"}, 2, "flag --overwrite takes no value", ""},
      {{"train", "--config", "@GOOD@", "--set", "run_dir=@OUT@", "--resume", "@D@/none.pt"}, 1, "@D@/none.pt: checkpoint file not found", ""},
      {{"train", "--config", "@GOOD@", "--set", "run_dir=@D@/runs/ckpt", "--threads", "1"}, 1,
       "run_dir '@D@/runs/ckpt' already holds a run (config.yaml, metrics.jsonl, ckpt); pass --resume @D@/runs/ckpt/ckpt/last.pt", ""},
      {{"train", "--config", "@GOOD@", "--set", "train"}, 1, "--set train: expected key.path=value", ""},
      // diffuse sample
      sample_row({"--steps", "4294967298"}, 2, "--steps: expected an integer in [1, 10000], found '4294967298'"),
      sample_row({"--steps", "0"}, 2, "--steps: expected an integer in [1, 10000], found '0'"),
      sample_row({"--steps", "abc"}, 2, "--steps: expected an integer"),
      sample_row({"--steps", ""}, 2, "--steps: expected an integer"),
      sample_row({"--cfg", "nan"}, 2, "--cfg: expected a number in [0.0, 100.0], found 'nan'"),
      sample_row({"--cfg", "inf"}, 2, "--cfg: expected a number in [0.0, 100.0], found 'inf'"),
      sample_row({"--cfg", "-1"}, 2, "--cfg: expected a number in [0.0, 100.0], found '-1'"),
      sample_row({"--cfg", "1e400"}, 2, "found '1e400'"),
      sample_row({"--cfg", "2x"}, 2, "--cfg: expected a number"),
      sample_row({"--sampler", "ddim", "--eta", "nan"}, 2, "--eta: expected a number in [0.0, 1.0], found 'nan'"),
      sample_row({"--sampler", "ddim", "--eta", "2"}, 2, "--eta: expected a number in [0.0, 1.0], found '2'"),
      sample_row({"--sampler", "ddim", "--eta", "-0.5"}, 2, "--eta: expected a number in [0.0, 1.0], found '-0.5'"),
      sample_row({"--clip", "nan"}, 2, "--clip: expected a number in [0.0, 1000.0], found 'nan'"),
      sample_row({"--clip", "-1"}, 2, "--clip: expected a number in [0.0, 1000.0], found '-1'"),
      sample_row({"--sampler", "heun", "--s-churn", "-1"}, 2, "--s-churn: expected a number in [0.0, 1000.0], found '-1'"),
      sample_row({"--s-churn", "inf"}, 2, "--s-churn: expected a number"),
      // The formalisms' sampler flags: ranges, and each only with its own sampler.
      sample_row({"--sampler", "langevin", "--langevin-steps", "0"}, 2, "--langevin-steps: expected an integer in [1, 100000], found '0'"),
      sample_row({"--sampler", "langevin", "--langevin-eps", "0"}, 2, "--langevin-eps: expected a number in ["),
      sample_row({"--sampler", "langevin", "--langevin-eps", "nan"}, 2, "--langevin-eps: expected a number"),
      sample_row({"--langevin-steps", "5"}, 2, "--langevin-steps applies to --sampler langevin only"),
      sample_row({"--sampler", "pc", "--corrector-steps", "-1"}, 2, "--corrector-steps: expected an integer in [0, 1000], found '-1'"),
      sample_row({"--sampler", "pc", "--snr", "0"}, 2, "--snr: expected a number in ["),
      sample_row({"--sampler", "pc", "--predictor", "langevin"}, 2, "--predictor langevin is not a predictor"),
      sample_row({"--sampler", "pc", "--predictor", "fastest"}, 1, "unknown sampler 'fastest'"),
      sample_row({"--snr", "0.2"}, 2, "--snr applies to --sampler pc only"),
      sample_row({"--classifier-scale", "2"}, 2, "--classifier-scale needs --classifier"),
      sample_row({"--classifier", "@D@/none.pt"}, 1, "@D@/none.pt: checkpoint file not found"),
      sample_row({"--classifier", "@CKPT@"}, 1, "holds a diffusion model (model.arch unet), not a classifier"),
      train_row({"train.eval_every=1", "train.eval.features=@D@/none.pt"}, "@D@/none.pt: checkpoint file not found"),
      train_row({"train.eval_every=1", "train.eval.features=@CKPT@"}, "holds a diffusion model (model.arch unet), not a classifier"),
      // diffuse eval: flags are checked before any network runs.
      {{"eval", "--ref", "fashion:test"}, 2, "'diffuse eval' needs --features", ""},
      {{"eval", "--features", "@CKPT@", "--ref", "fashion:test"}, 2, "give --samples to evaluate, or --save-stats", ""},
      {{"eval", "--features", "@CKPT@", "--ref", "fashion:test", "--samples", "@D@", "--kid-subsets", "0"}, 2,
       "--kid-subsets: expected an integer in [1, 10000], found '0'", ""},
      {{"eval", "--features", "torchscript:@D@/f.pt", "--ref", "fashion:test", "--samples", "@D@", "--feature-range", "byte"}, 2,
       "--feature-range: expected uint8, unit or minus1_1, found 'byte'", ""},
      {{"eval", "--features", "torchscript:@D@/f.pt", "--ref", "fashion:test", "--samples", "@D@", "--feature-channels", "2"}, 2,
       "--feature-channels: expected 1 or 3, found 2", ""},
      {{"eval", "--features", "torchscript:@D@/f.pt", "--ref", "fashion:test", "--samples", "@D@"}, 1,
       "@D@/f.pt: no such TorchScript feature network file", ""},
      {{"eval", "--features", "@CKPT@", "--ref", "fashion:test", "--samples", "@D@"}, 1,
       "holds a diffusion model (model.arch unet), not a classifier", ""},
      {{"eval", "--features", "@CKPT@", "--ref", "fashion:test", "--samples", "@D@", "--no-ema", "--feature-size", "9"}, 2,
       "--feature-size applies to --features torchscript:PATH only", ""},
      // diffuse reflow and consistency distillation.
      {{"reflow", "--checkpoint", "@CKPT@", "--config", "@GOOD@", "--out", "@OUT@"}, 2, "--pairs is required", ""},
      {{"reflow", "--checkpoint", "@CKPT@", "--config", "@GOOD@", "--pairs", "0", "--out", "@OUT@"}, 2,
       "--pairs: expected an integer in [1, 100000000], found '0'", ""},
      {{"reflow", "--checkpoint", "@CKPT@", "--config", "@GOOD@", "--pairs", "4", "--sampler", "ddpm", "--out", "@OUT@"}, 2,
       "--sampler ddpm is stochastic", ""},
      {{"reflow", "--checkpoint", "@CKPT@", "--config", "@GOOD@", "--pairs", "4", "--out", "@OUT@"}, 1,
       "reflow retrains a flow-matching model (diffusion.schedule flow)", ""},
      train_row({"distill.method=consistency", "distill.teacher=@D@/none.pt"}, "@D@/none.pt: checkpoint file not found"),
      train_row({"distill.method=consistency"}, "needs the teacher's checkpoint"),
      sample_row({"--cuda-graph", "--device", "cpu"}, 1, "--cuda-graph: "),
      // Checked before sampling, so no per-seed images are left behind.
      sample_row({"--grid-cols", "abc"}, 2, "--grid-cols: expected an integer in [1, 1024], found 'abc'"),
      sample_row({"--grid-cols", "0"}, 2, "--grid-cols: expected an integer in [1, 1024], found '0'"),
      sample_row({"--batch-size", "0"}, 2, "--batch-size: expected an integer in [1, 65536], found '0'"),
      sample_row({"--batch-size", "99999999999"}, 2, "--batch-size: expected an integer in [1, 65536]"),
      sample_row({"--class", "-1"}, 2, "--class: expected an integer in [0, 1000000], found '-1'"),
      sample_row({"--class", "10"}, 1, "class 10 is out of range: the model has 10 classes (0-9)"),
      sample_row({"--class", "1", "--classes", "0-3"}, 2, "give --class or --classes, not both"),
      sample_row({"--classes", "0-99"}, 1, "class 10 is out of range"),
      sample_row({"--seeds", "0-x"}, 2, "--seeds: cannot read '0-x'"),
      sample_row({"--seeds", "99999999999999999999"}, 2, "--seeds: number '99999999999999999999' does not fit in 64 bits"),
      sample_row({"--seeds", "5-1"}, 2, "--seeds: cannot read '5-1'"),
      sample_row({"--seeds", ""}, 2, "--seeds: cannot read"),
      sample_row({"--seeds", "-3"}, 2, "--seeds: cannot read"),
      sample_row({"--format", "jpg"}, 2, "--format: expected png or pt, found 'jpg'"),
      sample_row({"--sampler", "fastest"}, 1, "unknown sampler 'fastest'; valid samplers: ddpm, ddim"),
      sample_row({"--spacing", "weird"}, 1, "unknown timestep spacing 'weird'"),
      sample_row({"--device", "cpu1"}, 2, "--device: unknown device 'cpu1'; valid devices: auto, cpu, cuda, cuda:N"),
      sample_row({"--device", "cuda:x"}, 2, "--device: unknown device 'cuda:x'"),
      sample_row({"--device", "cpu:0"}, 2, "--device: unknown device 'cpu:0'"),
      sample_row({"--no-ema=1"}, 2, "flag --no-ema takes no value"),
      sample_row({"--out", "@OUT@"}, 2, "flag --out given more than once"),
      sample_row({"extra"}, 2, "unexpected argument 'extra'"),
      {{"sample", "--checkpoint", "@CKPT@"}, 2, "'diffuse sample' needs --out", ""},
      {{"sample", "--out", "@OUT@"}, 2, "'diffuse sample' needs --checkpoint", ""},
      // A latent model: PNG output is refused with the reason, before sampling.
      {{"sample", "--checkpoint", "@LATENT@", "--steps", "2", "--seeds", "0", "--out", "@OUT@"}, 1,
       "generates 4-channel latents, which are not images (PNG holds 1 or 3 channels); use --format pt", ""},
      {{"sample", "--checkpoint", "@LATENT@", "--format", "png", "--seeds", "0", "--out", "@OUT@"}, 1, "4-channel latents", ""},
      // diffuse restore
      restore_row({"--input", "@D@/good.png", "--batch-size", "0"}, 2, "--batch-size: expected an integer in [1, 65536], found '0'"),
      {{"restore", "--checkpoint", "@CKPT@", "--input", "@D@/good.png", "--out", "@OUT@"}, 2, "'diffuse restore' needs --task", ""},
      {{"restore", "--checkpoint", "@CKPT@", "--task", "@D@/absent.yaml", "--input", "@D@/good.png", "--out", "@OUT@"}, 1,
       "@D@/absent.yaml: config file not found", ""},
      restore_row({"--input", "@D@/good.png", "--set", "zeta=nan"}, 1, "--set zeta: zeta: expected a finite number"),
      restore_row({"--input", "@D@/good.png", "--set", "steps=0"}, 1, "--set steps: steps: must be an integer in [1, 100000]"),
      restore_row({"--input", "@D@/good.png", "--set", "operator.name=blur"}, 1, "unknown operator 'blur'"),
      restore_row({"--input", "@D@/good.png", "--set", "cfg=inf"}, 1, "--set cfg: cfg: expected a finite number"),
      restore_row({"--input", "@D@/good.png", "--measurement", "@D@/good.png"}, 2, "give exactly one of --input"),
      restore_row({"--input", "@D@/good.png", "--seeds", "1,2"}, 2, "--seeds: give one seed per input image (1)"),
      restore_row({"--input", "@D@/good.png", "--device", "gpu"}, 2, "--device: unknown device 'gpu'"),
      // diffuse invert
      invert_row({"--sampler", "euler_a"}, 2,
                 "--sampler euler_a does not solve the probability-flow ODE; inversion takes one of: ddim, euler, heun, dpmpp2m"),
      invert_row({"--batch-size", "0"}, 2, "--batch-size: expected an integer in [1, 65536], found '0'"),
      invert_row({"--cfg", "3"}, 1, "inversion: guidance (cfg 3.0) needs class labels for the images"),
      invert_row({"--cfg", "-101"}, 2, "--cfg: expected a number in [-100.0, 100.0], found '-101'"),
      invert_row({"--class", "10"}, 1, "class 10 is out of range: the model has 10 classes (0-9)"),
      invert_row({"--class", "1", "--classes", "0-9"}, 2, "give --class or --classes, not both"),
      invert_row({"--spacing", "cubic"}, 1, "cubic"),
      {{"invert", "--checkpoint", "@CKPT@", "--out", "@OUT@"}, 2, "'diffuse invert' needs --input", ""},
      {{"invert", "--checkpoint", "@LATENT@", "--input", "@D@/good.png", "--out", "@OUT@"}, 1,
       "is a 4-channel latent model; diffuse invert reads images (1 or 3 channels)", ""},
      {{"invert", "--checkpoint", "@CKPT@", "--input", "@D@/absent.png", "--out", "@OUT@"}, 1,
       "--input '@D@/absent.png' is neither an image file, a folder of images, nor a dataset slice", ""},
      // diffuse distill
      distill_row({"--set", "class=10"}, 1, "class: @CKPT@ has classes 0-9, found 10"),
      distill_row({"--set", "class=-1", "--set", "classes=[0,12]", "--set", "particles=2"}, 1,
                  "classes: @CKPT@ has classes 0-9, found 12"),
      distill_row({"--set", "classes=[0,1]"}, 1, "classes: give class or classes, not both"),
      distill_row({"--set", "method=dds"}, 1, "unknown value 'dds'; valid values: sds, vsd, sdi"),
      distill_row({"--set", "generator.kind=nerf"}, 1, "unknown value 'nerf'"),
      distill_row({"--set", "particles=0"}, 1, "particles: must be an integer in [1, 4096], found 0"),
      distill_row({"--set", "t_min=0.9", "--set", "t_max=0.5"}, 1, "t_min: must not exceed t_max (0.5), found 0.9"),
      distill_row({"--set", "cfg=-1"}, 1, "cfg: must lie in [0.0, 100.0], found -1.0"),
      distill_row({"--set", "method=vsd", "--set", "vsd.lora_rank=0"}, 1, "vsd.lora_rank: must be an integer in [1, 1024]"),
      distill_row({"--set", "method=sdi", "--set", "sdi.tau_max=2"}, 1, "sdi.tau_max: must lie in [0.0, 1.0]"),
      distill_row({"--device", "gpu"}, 2, "--device: unknown device 'gpu'"),
      {{"distill", "--checkpoint", "@CKPT@", "--out", "@OUT@"}, 2, "'diffuse distill' needs --config", ""},
      {{"distill", "--checkpoint", "@CKPT@", "--config", "@D@/absent.yaml", "--out", "@OUT@"}, 1,
       "@D@/absent.yaml: config file not found", ""},
      {{"distill", "--checkpoint", "@LATENT@", "--config", "@DISTILL@", "--out", "@OUT@"}, 1,
       "@LATENT@ is a 4-channel latent model; diffuse distill renders images (1 or 3 channels)", ""},
      {{"distill", "--checkpoint", "@UNCOND@", "--config", "@DISTILL@", "--out", "@OUT@"}, 1,
       "class: 0 given, but @UNCOND@ is unconditional; use class: -1", ""},
      {{"distill", "--checkpoint", "@UNCOND@", "--config", "@DISTILL@", "--set", "class=-1", "--out", "@OUT@"}, 1,
       "cfg: guidance needs a class-conditional checkpoint, and @UNCOND@ is unconditional", ""},
      {{"distill", "--checkpoint", "@NODROP@", "--config", "@DISTILL@", "--out", "@OUT@"}, 1,
       "@NODROP@ was trained without label dropout (diffusion.p_uncond 0), so its null class is untrained", ""},
      // diffuse export
      {{"export", "--checkpoint", "@CKPT@", "--out", "@OUT@"}, 2,
       "--out: expected a file name ending in .safetensors, found '@OUT@'", ""},
      {{"export", "--out", "@OUT@/m.safetensors"}, 2, "'diffuse export' needs --checkpoint", ""},
      sample_row({"--vae", "@VAE@"}, 1, "--vae @VAE@: the VAE decodes 4-channel latents, but @CKPT@ generates 1 channels"),
      sample_row({"--vae", "@D@/good.png"}, 1, "@D@/good.png: not a safetensors file"),
      sample_row({"--vae", "@CKPT@"}, 1, "@CKPT@: not a safetensors file"),
      // diffuse import
      {{"import", "--from", "diffusers-unet", "--weights", "@D@/w.safetensors", "--out", "@OUT@/m.safetensors"}, 2,
       "--from: unknown format 'diffusers-unet'; valid formats: dit-official, diffusers-dit, diffusers-unet2d, diffusers-vae",
       ""},
      {{"import", "--from", "diffusers-vae", "--heads", "4", "--weights", "@D@/w.safetensors", "--out", "@OUT@/m.safetensors"},
       2, "--heads: only for --from dit-official", ""},
      {{"import", "--from", "dit-official", "--out", "@OUT@/m.safetensors"}, 2, "'diffuse import' needs --weights", ""},
      {{"import", "--from", "dit-official", "--weights", "@D@/w.safetensors", "--out", "@OUT@"}, 2,
       "--out: expected a file name ending in .safetensors, found '@OUT@'", ""},
      {{"import", "--from", "dit-official", "--weights", "@D@/absent.safetensors", "--out", "@OUT@/m.safetensors"}, 1,
       "@D@/absent.safetensors: safetensors file not found", ""},
      {{"import", "--from", "dit-official", "--weights", "@D@/good.png", "--out", "@OUT@/m.safetensors"}, 1,
       "@D@/good.png: cannot read it as a torch.save file of {name: tensor}", ""},
      // diffuse info
      {{"info"}, 2, "'diffuse info' needs --config PATH or --checkpoint PATH", ""},
      {{"info", "--verify"}, 2, "--verify needs --checkpoint PATH", ""},
      {{"info", "--config", "@GOOD@", "--checkpoint", "@CKPT@"}, 2, "not both", ""},
      {{"info", "--confg", "@GOOD@"}, 2, "unknown flag '--confg'", ""},
      {{"info", "--checkpoint", "@CKPT@", "--images", "5"}, 2, "--images, --bands, --split, --batch and --no-ema need --calibration", ""},
      {{"info", "--calibration"}, 2, "--calibration needs --checkpoint PATH", ""},
      {{"info", "--checkpoint", "@CKPT@", "--calibration", "--verify"}, 2, "give --calibration or --verify, not both", ""},
      {{"info", "--checkpoint", "@CKPT@", "--calibration", "--split", "val", "--out", "@OUT@"}, 2,
       "--split: expected train or test, found 'val'", ""},
      {{"info", "--checkpoint", "@CKPT@", "--calibration", "--bands", "0"}, 2, "--bands: expected an integer in [1, 64], found '0'", ""},
  };
  // The restore rows need an input image of the model's shape.
  write_image(dir() + "/good.png", torch::zeros({1, 8, 8}));
  check_rows("flag", rows);
}

TEST_F(BadInput, Images) {
  need_checkpoints();
  const std::string d = dir();
  write_image(d + "/good.png", torch::linspace(-1, 1, 64).reshape({1, 8, 8}));
  const std::string png = test::read_file(d + "/good.png");
  ASSERT_GT(png.size(), 60u);
  test::write_file(d + "/truncated.png", png.substr(0, png.size() / 2));
  test::write_file(d + "/signature_only.png", png.substr(0, 8));
  std::string flipped = png;
  flipped[png.size() - 20] = static_cast<char>(flipped[png.size() - 20] ^ 0x04);  // inside IDAT
  test::write_file(d + "/flipped.png", flipped);
  test::write_file(d + "/huge.png", png_claiming(png, 100000, 100000));
  test::write_file(d + "/zero.png", png_claiming(png, 0, 8));
  std::string not_ihdr = png;
  not_ihdr.replace(12, 4, "IHDX");
  test::write_file(d + "/not_ihdr.png", not_ihdr);
  test::write_file(d + "/noise.png", std::string(300, '\x5a'));
  test::write_file(d + "/empty.png", "");
  write_image(d + "/good.jpg", torch::linspace(-1, 1, 64).reshape({1, 8, 8}));
  const std::string jpg = test::read_file(d + "/good.jpg");
  test::write_file(d + "/truncated.jpg", jpg.substr(0, jpg.size() / 2));
  test::write_file(d + "/huge.pgm", "P5\n4611686018427387904 4\n255\n");
  test::write_file(d + "/overflow.pgm", "P5\n3037000500 3037000500\n255\n");
  test::write_file(d + "/short.pgm", "P5\n8 8\n255\nabc");
  test::write_file(d + "/deep.pgm", "P5\n8 8\n65535\n" + std::string(128, '\0'));
  test::write_file(d + "/ascii.pgm", "P2\n8 8\n255\n0 0 0\n");
  test::write_file(d + "/negative.pgm", "P5\n-8 8\n255\n");
  test::write_file(d + "/header.pgm", "P5\n8");
  write_image(d + "/wide.png", torch::zeros({1, 8, 9}));
  fs::create_directories(d + "/empty_folder");
  test::write_file(d + "/bad_folder/a.png", png);
  test::write_file(d + "/bad_folder/b.png", flipped);
  test::write_file(d + "/train_folder/cls/a.png", png);
  test::write_file(d + "/train_folder/cls/b.png", png.substr(0, png.size() - 13));
  test::write_file(d + "/huge_folder/cls/a.png", png_claiming(png, 100000, 100000));

  const auto input = [](const std::string& file, const std::string& fragment) {
    return restore_row({"--input", "@D@/" + file}, 1, fragment);
  };
  const std::string folder_config = "data: {type: image_folder, path: @D@/";
  const std::vector<Row> rows{
      input("truncated.png", "@D@/truncated.png: truncated PNG"),
      input("signature_only.png", "@D@/signature_only.png: truncated PNG: the file ends at byte 8 before its IEND chunk"),
      input("flipped.png", "@D@/flipped.png: corrupt PNG: CRC mismatch in chunk 'IDAT'"),
      input("huge.png", "@D@/huge.png: the image header claims 100000x100000 pixels; diffuse reads images of 1x1 up to 16384x16384"),
      input("zero.png", "@D@/zero.png: the image header claims 0x8 pixels"),
      input("not_ihdr.png", "@D@/not_ihdr.png: corrupt PNG"),
      input("noise.png", "@D@/noise.png: cannot decode the image"),
      input("empty.png", "@D@/empty.png: cannot decode the image"),
      input("truncated.jpg", "@D@/truncated.jpg"),
      input("huge.pgm", "@D@/huge.pgm: the image header claims"),
      input("overflow.pgm", "@D@/overflow.pgm: the image header claims 3037000500x3037000500 pixels"),
      input("short.pgm", "@D@/short.pgm: truncated PGM/PPM: 64 pixel bytes expected, 3 found"),
      input("deep.pgm", "@D@/deep.pgm: PGM/PPM maxval expected 255, found 65535"),
      input("ascii.pgm", "@D@/ascii.pgm: not a binary PGM/PPM file"),
      input("negative.pgm", "@D@/negative.pgm: bad PGM/PPM width '-8'"),
      input("header.pgm", "@D@/header.pgm: truncated PGM/PPM header"),
      input("wide.png", "@D@/wide.png: the image must be 1×8×8 (channels×height×width), found 1×8×9; pass --resize"),
      input("absent.png", "--input '@D@/absent.png' is neither an image file"),
      input("empty_folder", "@D@/empty_folder: --input folder holds no image files"),
      input("bad_folder", "@D@/bad_folder/b.png: corrupt PNG: CRC mismatch"),
      restore_row({"--measurement", "@D@/truncated.png"}, 1, "@D@/truncated.png: truncated PNG"),
      restore_row({"--measurement", "@D@/huge.png"}, 1, "@D@/huge.png: the image header claims 100000x100000"),
      config_row(folder_config + "train_folder}\n", "@D@/train_folder/cls/b.png: truncated PNG"),
      config_row(folder_config + "train_folder}\n", "set data.skip_corrupt: true to skip such files"),
      config_row(folder_config + "huge_folder}\n", "@D@/huge_folder/cls/a.png: the image header claims 100000x100000"),
      config_row(folder_config + "huge_folder, skip_corrupt: true}\n", "@D@/huge_folder: every image file is unreadable"),
  };
  check_rows("image", rows);
}

TEST_F(BadInput, Checkpoints) {
  need_checkpoints();
  const std::string d = dir();
  const std::string bytes = test::read_file(shared_->values["@CKPT@"]);
  ASSERT_GT(bytes.size(), 16384u);
  const auto variant = [&](const std::string& name, const std::string& content) { test::write_file(d + "/" + name, content); };
  std::string flipped = bytes;
  flipped[bytes.size() / 2] = static_cast<char>(flipped[bytes.size() / 2] ^ 0x01);
  variant("flipped.pt", flipped);
  // A 4 KiB block from the middle on that is not all zeros already (zero-initialised weights are).
  std::string zeroed = bytes;
  for (size_t begin = bytes.size() / 2; zeroed == bytes && begin + 4096 < bytes.size(); begin += 4096)
    std::fill_n(zeroed.begin() + static_cast<std::ptrdiff_t>(begin), 4096, '\0');
  ASSERT_NE(zeroed, bytes);
  variant("zeroed.pt", zeroed);
  variant("appended.pt", bytes + std::string(100, 'g'));
  variant("half.pt", bytes.substr(0, bytes.size() / 2));
  variant("short.pt", bytes.substr(0, bytes.size() - 1));
  variant("no_trailer.pt", bytes.substr(0, bytes.size() - 20));
  std::string bad_crc = bytes;
  bad_crc.back() = static_cast<char>(bad_crc.back() ^ 0x01);
  variant("bad_crc.pt", bad_crc);
  std::string bad_length = bytes;
  bad_length[bytes.size() - 12] = static_cast<char>(bad_length[bytes.size() - 12] ^ 0x02);
  variant("bad_length.pt", bad_length);
  std::string archive_end = bytes;
  archive_end[bytes.size() - 21] = static_cast<char>(archive_end[bytes.size() - 21] ^ 0x40);
  variant("archive_end.pt", archive_end);
  variant("empty.pt", "");
  variant("text.pt", std::string(5000, 'x'));
  torch::save(torch::ones({3}), d + "/tensor.pt");
  fs::create_directories(d + "/folder.pt");

  const std::string mismatch = ": corrupt checkpoint: checksum mismatch";
  const std::string moved = ": corrupt checkpoint: the checksum trailer is no longer at the end of the file";
  std::vector<Row> rows;
  // Each damaged file through every command that reads checkpoints.
  const auto every_reader = [&](const std::string& name, const std::string& fragment) {
    const std::string path = "@D@/" + name;
    const std::string message = path + fragment;
    rows.push_back({{"info", "--checkpoint", path}, 1, message, ""});
    rows.push_back({{"info", "--checkpoint", path, "--verify"}, 1, message, ""});
    rows.push_back({{"sample", "--checkpoint", path, "--steps", "1", "--seeds", "0", "--out", "@OUT@"}, 1, message, ""});
    rows.push_back({{"train", "--config", "@GOOD@", "--set", "run_dir=@OUT@", "--resume", path}, 1, message, ""});
    rows.push_back(restore_row({"--input", "@D@/good.png"}, 1, message));
    rows.back().args[2] = path;
    rows.push_back(distill_row({}, 1, message));
    rows.back().args[2] = path;
    rows.push_back({{"export", "--checkpoint", path, "--out", "@OUT@/m.safetensors"}, 1, message, ""});
  };
  every_reader("flipped.pt", mismatch);
  every_reader("zeroed.pt", mismatch);
  every_reader("appended.pt", moved);
  every_reader("half.pt", ": not a readable checkpoint");
  every_reader("short.pt", moved);
  every_reader("no_trailer.pt", moved);
  every_reader("bad_crc.pt", mismatch);
  every_reader("bad_length.pt", ": corrupt checkpoint: its checksum trailer records");
  every_reader("archive_end.pt", mismatch);
  every_reader("empty.pt", ": not a readable checkpoint");
  every_reader("text.pt", ": not a readable checkpoint");
  every_reader("tensor.pt", ": not a diffuse checkpoint");
  every_reader("folder.pt", ": is not a regular file");
  every_reader("absent.pt", ": checkpoint file not found");
  write_image(d + "/good.png", torch::zeros({1, 8, 8}));
  check_rows("checkpoint", rows);
}
