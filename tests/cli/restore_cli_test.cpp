// `diffuse restore` end to end: a tiny UNet trained once for the suite (2 steps on 12×12
// IDX images), then restorations from a folder, a single file, a dataset slice and a real
// measurement with few DPS steps, and every bad-input path (one error line, nothing written).
// `diffuse invert`, which reads its inputs the same way, runs on the same checkpoint.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "diffuse/io/image_io.h"
#include "diffuse/io/safetensors.h"
#include "support/dataset_files.h"
#include "support/expect_text.h"
#include "support/run_command.h"
#include "support/test_paths.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {


constexpr int64_t kSize = 12;


class RestoreCli : public ::testing::Test {
 protected:
  // One tiny unconditional ε-prediction UNet and an IDX folder (train and t10k splits) shared
  // by every test of the suite.
  static void SetUpTestSuite() {
    dir_ = std::make_unique<test::TempDir>();
    const std::string idx = dir_->file("idx");
    test::write_idx_split(idx, "train", test::pattern_images(16, kSize, kSize), test::pattern_labels(16), false);
    test::write_idx_split(idx, "t10k", test::pattern_images(4, kSize, kSize), test::pattern_labels(4), false);
    const std::string config = dir_->file("tiny.yaml");
    test::write_file(config,
                     "name: tiny\nrun_dir: " + dir_->file("run") +
                         "\n"
                         "data: {type: idx, path: " + idx + ", num_workers: 0}\n"
                         "model:\n  arch: unet\n  num_classes: 0\n"
                         "  unet: {base_channels: 16, channel_mult: [1], num_res_blocks: 1, "
                         "attention_resolutions: [], num_groups: 8}\n"
                         "diffusion: {schedule: vp_linear, prediction: eps}\n"
                         "train: {steps: 2, batch_size: 4, device: cpu, sample_every: 0, ckpt_every: 2, "
                         "log_every: 1, precision: fp32, num_threads: 1}\n");
    const auto r = test::run_diffuse({"train", "--config", config});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    checkpoint_ = dir_->file("run/ckpt/last.pt");
    ASSERT_TRUE(fs::exists(checkpoint_));
    idx_dir_ = idx;

    // Three clean inputs as image files, and one of the wrong size.
    fs::create_directories(dir_->file("inputs"));
    const auto images = test::pattern_images(3, kSize, kSize).to(torch::kFloat32) / 127.5 - 1.0;
    for (int64_t k = 0; k < 3; ++k)
      write_image(dir_->file("inputs/img" + std::to_string(k) + ".png"), images[k].unsqueeze(0));
    write_image(dir_->file("big.png"), torch::zeros({1, 16, 16}));
  }
  static void TearDownTestSuite() { dir_.reset(); }

  static std::string task(const std::string& name) {
    return (test::source_dir() / "configs" / "restore" / (name + ".yaml")).string();
  }

  static std::unique_ptr<test::TempDir> dir_;
  static std::string checkpoint_, idx_dir_;
};

std::unique_ptr<test::TempDir> RestoreCli::dir_;
std::string RestoreCli::checkpoint_;
std::string RestoreCli::idx_dir_;

}  // namespace

TEST_F(RestoreCli, InpaintsAFolderAndWritesEveryOutput) {
  test::TempDir out;
  const auto r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("inpaint_box"), "--input",
                                    dir_->file("inputs"), "--out", out.file("o"), "--set", "steps=5", "--set",
                                    "operator.box_size=4", "--batch-size", "2", "--device", "cpu"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string ext = image_extension(1);
  for (int k = 0; k < 3; ++k) {
    const std::string name = "img" + std::to_string(k) + ext;
    EXPECT_EQ(read_image(out.file("o/restored/" + name), 0).sizes().vec(), (std::vector<int64_t>{1, kSize, kSize}));
    EXPECT_TRUE(fs::exists(out.file("o/measurement/" + name))) << name;
  }
  // Rows per image, columns clean | measurement | restored: 3 · (12 + 2) + 2 = 44 square.
  EXPECT_EQ(read_image(out.file("o/grid" + ext), 0).sizes().vec(), (std::vector<int64_t>{1, 44, 44}));

  const auto metrics = nlohmann::json::parse(test::read_file(out.file("o/metrics.json")));
  ASSERT_EQ(metrics["images"].size(), 3u);
  EXPECT_EQ(metrics["images"][0]["name"], "img0");
  EXPECT_EQ(metrics["images"][2]["name"], "img2");
  for (const auto& image : metrics["images"])
    for (const char* key : {"psnr", "naive_psnr", "ssim", "naive_ssim"}) EXPECT_TRUE(image[key].is_number()) << key;
  EXPECT_TRUE(metrics["mean"]["psnr"].is_number());
  EXPECT_TRUE(metrics["seconds_per_image"].is_number());

  const std::string record = test::read_file(out.file("o/restore.yaml"));
  EXPECT_CONTAINS(record, "inpaint_box");
  EXPECT_CONTAINS(record, "steps: 5");
  EXPECT_CONTAINS(record, "box_size: 4");
  EXPECT_CONTAINS(record, "images: 3");
  // Nothing temporary left behind.
  for (const auto& entry : fs::recursive_directory_iterator(out.file("o")))
    EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << entry.path();
}

TEST_F(RestoreCli, SameSeedsGiveTheSameRestoration) {
  test::TempDir out;
  for (const char* name : {"a", "b"}) {
    const auto r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("denoise"), "--input",
                                      dir_->file("inputs/img1.png"), "--out", out.file(name), "--set", "steps=3",
                                      "--seeds", "7", "--device", "cpu"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const std::string file = "/restored/img1" + image_extension(1);
  EXPECT_TRUE(read_image(out.file("a") + file, 0).equal(read_image(out.file("b") + file, 0)));
  EXPECT_TRUE(read_image(out.file("a") + "/measurement/img1" + image_extension(1), 0)
                  .equal(read_image(out.file("b") + "/measurement/img1" + image_extension(1), 0)));
}

TEST_F(RestoreCli, SuperResolvesADatasetSlice) {
  test::TempDir out;
  const auto r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("super_resolution_2x"),
                                    "--input", "fashion:test[1:3]", "--out", out.file("o"), "--set", "steps=4",
                                    "--device", "cpu"},
                                   {{"FASHION_MNIST_DIR", idx_dir_}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string ext = image_extension(1);
  // The measurement is the 6×6 low-resolution image; the restoration is full size.
  EXPECT_EQ(read_image(out.file("o/measurement/fashion_test_1" + ext), 0).sizes().vec(),
            (std::vector<int64_t>{1, 6, 6}));
  EXPECT_EQ(read_image(out.file("o/restored/fashion_test_2" + ext), 0).sizes().vec(),
            (std::vector<int64_t>{1, kSize, kSize}));
  const std::string metrics = test::read_file(out.file("o/metrics.json"));
  EXPECT_CONTAINS(metrics, "bilinear-upsampled measurement");
  EXPECT_CONTAINS(metrics, "\"naive_psnr\": ");
}

TEST_F(RestoreCli, MetricsAreValidJsonForAnyFileName) {
  // Quotes, backslashes, control characters and a byte that is not UTF-8 in the names.
  test::TempDir out;
  const std::string ext = image_extension(1);
  const std::vector<std::string> stems{"quote\"back\\slash", "tab\tbell\x01", "latin\xe9"};
  const auto image = read_image(dir_->file("inputs/img0" + ext), 0);
  for (const auto& stem : stems) write_image(out.file("in/" + stem + ext), image);
  const auto r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("denoise"), "--input",
                                    out.file("in"), "--out", out.file("o"), "--set", "steps=1", "--device", "cpu"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto metrics = nlohmann::json::parse(test::read_file(out.file("o/metrics.json")));  // throws when invalid
  ASSERT_EQ(metrics["images"].size(), 3u);
  std::vector<std::string> names;
  for (const auto& entry : metrics["images"]) names.push_back(entry["name"]);
  EXPECT_EQ(names[0], "latin\xef\xbf\xbd");  // U+FFFD replaces the Latin-1 byte
  EXPECT_EQ(names[1], stems[0]);
  EXPECT_EQ(names[2], stems[1]);
}

TEST_F(RestoreCli, RestoresARealMeasurementWithoutMetrics) {
  test::TempDir out;
  write_image(out.file("y.png"), torch::zeros({1, 6, 6}));
  const auto r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("super_resolution_2x"),
                                    "--measurement", out.file("y.png"), "--out", out.file("o"), "--set", "steps=3",
                                    "--device", "cpu"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string ext = image_extension(1);
  EXPECT_EQ(read_image(out.file("o/restored/y" + ext), 0).sizes().vec(), (std::vector<int64_t>{1, kSize, kSize}));
  // No ground truth: no metrics, and a grid of measurement | restored.
  EXPECT_FALSE(fs::exists(out.file("o/metrics.json")));
  EXPECT_EQ(read_image(out.file("o/grid" + ext), 0).sizes().vec(), (std::vector<int64_t>{1, 16, 30}));
  EXPECT_CONTAINS(test::read_file(out.file("o/restore.yaml")), "measurement: ");

  // A measurement of the image's size does not fit a ×2 super-resolution task.
  const auto bad = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("super_resolution_2x"),
                                      "--measurement", dir_->file("inputs/img0.png"), "--out", out.file("bad"),
                                      "--device", "cpu"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_CONTAINS(bad.err, "1×6×6");
  EXPECT_CONTAINS(bad.err, "1×12×12");
  EXPECT_FALSE(fs::exists(out.file("bad")));
}

TEST_F(RestoreCli, InputAndMeasurementTogetherIsAUsageError) {
  const auto r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("denoise"), "--input",
                                    dir_->file("inputs"), "--measurement", dir_->file("big.png"), "--out", "x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_CONTAINS(r.err, "--measurement");
}

TEST_F(RestoreCli, MissingTaskFileIsOneErrorLine) {
  test::TempDir out;
  const auto r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", out.file("nope.yaml"),
                                    "--input", dir_->file("inputs"), "--out", out.file("o")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(test::line_count(r.err), 1u) << r.err;
  EXPECT_CONTAINS(r.err, out.file("nope.yaml"));
  EXPECT_FALSE(fs::exists(out.file("o")));
}

TEST_F(RestoreCli, UnknownOperatorListsTheValidOnes) {
  test::TempDir out;
  const auto r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("denoise"), "--set",
                                    "operator.name=deblur", "--input", dir_->file("inputs"), "--out", out.file("o")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::line_count(r.err), 1u) << r.err;
  EXPECT_CONTAINS(r.err, "deblur");
  EXPECT_CONTAINS(r.err, "inpaint_box, inpaint_random, gaussian_blur, motion_blur, super_resolution, denoise");
  EXPECT_FALSE(fs::exists(out.file("o")));
}

TEST_F(RestoreCli, WrongInputSizeNamesTheFileUnlessResized) {
  test::TempDir out;
  const auto r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("denoise"), "--input",
                                    dir_->file("big.png"), "--out", out.file("o"), "--set", "steps=2",
                                    "--device", "cpu"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::line_count(r.err), 1u) << r.err;
  EXPECT_CONTAINS(r.err, dir_->file("big.png"));
  EXPECT_CONTAINS(r.err, "1×12×12");
  EXPECT_CONTAINS(r.err, "1×16×16");
  EXPECT_CONTAINS(r.err, "--resize");
  EXPECT_FALSE(fs::exists(out.file("o")));

  const auto resized = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("denoise"), "--input",
                                          dir_->file("big.png"), "--out", out.file("o"), "--set", "steps=2",
                                          "--resize", "--device", "cpu"});
  ASSERT_EQ(resized.exit_code, 0) << resized.err;
  EXPECT_EQ(read_image(out.file("o/restored/big" + image_extension(1)), 0).sizes().vec(),
            (std::vector<int64_t>{1, kSize, kSize}));
}

TEST_F(RestoreCli, BadSeedsAndFlagsAreUsageErrors) {
  test::TempDir out;
  auto r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("denoise"), "--input",
                              dir_->file("inputs"), "--out", out.file("o"), "--seeds", "1,2"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_CONTAINS(r.err, "--seeds");
  r = test::run_diffuse({"restore", "--checkpoint", checkpoint_, "--task", task("denoise"), "--out", out.file("o")});
  EXPECT_EQ(r.exit_code, 2);
  r = test::run_diffuse({"restore", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_CONTAINS(r.out, "clean | measurement | restored");
  EXPECT_FALSE(fs::exists(out.file("o")));
}

// `diffuse invert` shares the suite's checkpoint and inputs.
TEST_F(RestoreCli, InvertWritesNoiseReconstructionsAndTheRoundTripPsnr) {
  test::TempDir out;
  const auto r = test::run_diffuse({"invert", "--checkpoint", checkpoint_, "--input", dir_->file("inputs"), "--steps",
                                    "4", "--sampler", "heun", "--batch-size", "2", "--out", out.file("o"), "--device",
                                    "cpu", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.err + r.out, "round trip of 3 image(s): PSNR mean");
  const std::string ext = image_extension(1);
  for (const char* name : {"img0", "img1", "img2"})
    EXPECT_EQ(read_image(out.file("o/reconstructed/") + name + ext, 0).sizes().vec(),
              (std::vector<int64_t>{1, kSize, kSize}));
  // One row per image: input | reconstruction, 2 px padding.
  EXPECT_EQ(read_image(out.file("o/grid" + ext), 0).sizes().vec(), (std::vector<int64_t>{1, 44, 30}));
  torch::Tensor noise;
  torch::load(noise, out.file("o/noise.pt"));
  EXPECT_EQ(noise.sizes().vec(), (std::vector<int64_t>{3, 1, kSize, kSize}));
  const auto record = nlohmann::json::parse(test::read_file(out.file("o/invert.json")));
  EXPECT_EQ(record["sampler"], "heun");
  EXPECT_EQ(record["steps"], 4);
  EXPECT_EQ(record["labels"], "unconditional");
  ASSERT_EQ(record["images"].size(), 3u);
  EXPECT_EQ(record["images"][1]["name"], "img1");
  EXPECT_TRUE(record["images"][1]["psnr"].is_number());
  // The σ path: the schedule's σ_min, then the 4 σ > 0 of the sampling grid, increasing.
  const auto sigmas = record["inversion_sigmas"].get<std::vector<double>>();
  ASSERT_EQ(sigmas.size(), 5u);
  for (size_t i = 1; i < sigmas.size(); ++i) EXPECT_GT(sigmas[i], sigmas[i - 1]);
  EXPECT_TRUE(record["noise_std"].is_number());
  for (const auto& entry : fs::recursive_directory_iterator(out.file("o")))
    EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << entry.path();
}

// `diffuse distill` on the suite's unconditional checkpoint: SDS over pixels writes every
// output, the same command again continues (here: finds the run complete), and other options
// in the same folder are refused without touching it.
TEST_F(RestoreCli, DistillWritesRendersProgressAndResumesOnlyTheSameRun) {
  test::TempDir out;
  const std::string config = (test::source_dir() / "configs" / "distill" / "sds_pixels.yaml").string();
  const std::vector<std::string> command{"distill", "--checkpoint", checkpoint_, "--config", config, "--set", "class=-1",
                                         "--set", "cfg=1", "--set", "steps=4", "--set", "particles=3", "--set",
                                         "snapshot_every=2", "--set", "log_every=2", "--set", "save_every=2",
                                         "--out", out.file("o"), "--device", "cpu", "--threads", "1"};
  auto r = test::run_diffuse(command);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.err + r.out, "4 steps in");
  const std::string ext = image_extension(1);
  for (int k = 0; k < 3; ++k)
    EXPECT_EQ(read_image(out.file("o/renders/particle_" + std::to_string(k) + ext), 0).sizes().vec(),
              (std::vector<int64_t>{1, kSize, kSize}));
  // Two snapshots (steps 2 and 4), one row each of 3 renders, 2 px padding.
  EXPECT_EQ(read_image(out.file("o/progress" + ext), 0).sizes().vec(), (std::vector<int64_t>{1, 2 * 16, 3 * 14 + 2}));
  EXPECT_TRUE(fs::exists(out.file("o/final" + ext)));
  EXPECT_TRUE(fs::exists(out.file("o/curves.png")));
  EXPECT_TRUE(fs::exists(out.file("o/state.pt")));
  EXPECT_FALSE(fs::exists(out.file("o/turntable")));
  std::ifstream metrics(out.file("o/metrics.jsonl"));
  std::vector<nlohmann::json> rows;
  for (std::string line; std::getline(metrics, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["step"], 4);
  EXPECT_TRUE(rows[1]["loss"].is_number());
  const auto record = nlohmann::json::parse(test::read_file(out.file("o/distill.json")));
  EXPECT_EQ(record["method"], "sds");
  EXPECT_EQ(record["generator"], "pixels");
  EXPECT_EQ(record["classes"], (std::vector<int64_t>{-1, -1, -1}));
  EXPECT_GT(record["mean_abs"].get<double>(), 0.0);

  const std::string before = test::read_file(out.file("o/distill.json"));
  r = test::run_diffuse(command);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.err + r.out, "resuming " + out.file("o") + " at step 4/4");
  EXPECT_EQ(test::read_file(out.file("o/distill.json")).substr(0, before.find("\"seconds\"")),
            before.substr(0, before.find("\"seconds\"")));

  auto other = command;
  *std::find(other.begin(), other.end(), "steps=4") = "steps=6";
  r = test::run_diffuse(other);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, out.file("o") + " holds a run with another checkpoint or other options");
  EXPECT_EQ(test::read_file(out.file("o/distill.json")).substr(0, before.find("\"seconds\"")),
            before.substr(0, before.find("\"seconds\"")));
}

// A volume renders a turntable of every particle from `turntable_views` azimuths.
TEST_F(RestoreCli, DistillOfAVolumeWritesATurntable) {
  test::TempDir out;
  const std::string config = (test::source_dir() / "configs" / "distill" / "sdi_volume.yaml").string();
  const auto r = test::run_diffuse({"distill", "--checkpoint", checkpoint_, "--config", config, "--set", "class=-1",
                                    "--set", "cfg=1", "--set", "sdi.inversion_cfg=1", "--set", "steps=2", "--set",
                                    "particles=2", "--set", "generator.volume.grid=8", "--set",
                                    "generator.volume.ray_samples=8", "--set", "generator.volume.turntable_views=3",
                                    "--out", out.file("o"), "--device", "cpu", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string ext = image_extension(1);
  for (int k = 0; k < 2; ++k)
    for (int v = 0; v < 3; ++v)
      EXPECT_TRUE(fs::exists(out.file("o/turntable/particle_" + std::to_string(k) + "_view_" + std::to_string(v) + ext)));
  // One row of 3 views per particle.
  EXPECT_EQ(read_image(out.file("o/turntable" + ext), 0).sizes().vec(), (std::vector<int64_t>{1, 2 * 14 + 2, 3 * 14 + 2}));
}

// `diffuse export` writes the EMA weights with the config, and `diffuse sample` of the
// exported file draws exactly the images of the checkpoint; a foreign safetensors file is
// refused with the way in (diffuse import) named.
TEST_F(RestoreCli, ExportedModelSamplesExactlyLikeItsCheckpoint) {
  test::TempDir out;
  auto r = test::run_diffuse({"export", "--checkpoint", checkpoint_, "--out", out.file("m.safetensors")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.err + r.out, "ema weights of step 2");
  const auto file = read_safetensors(out.file("m.safetensors"));
  EXPECT_EQ(file.metadata.at("format"), "diffuse-model-1");
  EXPECT_EQ(file.metadata.at("weights"), "ema");
  EXPECT_EQ(file.metadata.at("step"), "2");
  EXPECT_CONTAINS(file.metadata.at("config"), "arch: unet");
  EXPECT_GT(file.tensors.size(), 10u);
  for (const auto& [name, tensor] : file.tensors) EXPECT_EQ(tensor.scalar_type(), torch::kFloat32) << name;
  r = test::run_diffuse({"info", "--checkpoint", out.file("m.safetensors")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "(exported model, safetensors)");
  EXPECT_CONTAINS(r.out, "weights:  ema");

  const auto grid = [&](const std::string& model, const std::string& folder) {
    const auto s = test::run_diffuse({"sample", "--checkpoint", model, "--steps", "3", "--sampler", "ddim", "--seeds",
                                      "0-3", "--out", out.file(folder), "--device", "cpu", "--threads", "1"});
    EXPECT_EQ(s.exit_code, 0) << s.err;
    return read_image(out.file(folder + "/grid" + image_extension(1)), 0);
  };
  EXPECT_TRUE(torch::equal(grid(checkpoint_, "from_checkpoint"), grid(out.file("m.safetensors"), "from_export")));

  r = test::run_diffuse({"export", "--checkpoint", checkpoint_, "--out", out.file("m.bin")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_CONTAINS(r.err, "--out: expected a file name ending in .safetensors, found '" + out.file("m.bin") + "'");
  write_safetensors(out.file("foreign.safetensors"), {{{"conv.weight", torch::ones({2})}}, {}});
  r = test::run_diffuse({"sample", "--checkpoint", out.file("foreign.safetensors"), "--out", out.file("f")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, out.file("foreign.safetensors") + ": not a model exported by diffuse");
  EXPECT_FALSE(fs::exists(out.file("f")));
}

// Latent diffusion end to end: a diffusers VAE is imported, an image folder of 3 classes is
// encoded to latents, a DiT trains on them, and diffuse sample --vae decodes its samples.
TEST_F(RestoreCli, LatentDitSamplesAreDecodedThroughAnImportedVae) {
  test::TempDir dir;
  torch::manual_seed(0);
  for (int k = 0; k < 12; ++k)
    write_image(dir.file("images/class" + std::to_string(k % 3) + "/img" + std::to_string(k) + ".png"),
                torch::rand({3, 8, 8}) * 2 - 1);
  test::write_file(dir.file("dit.yaml"),
                   "name: dit\nrun_dir: " + dir.file("run") + "\ndata: {type: latents, path: " +
                       dir.file("latents.safetensors") + ", num_workers: 0, hflip: false}\n"
                       "model:\n  arch: dit\n  dit: {patch_size: 2, hidden_size: 32, depth: 1, num_heads: 2}\n"
                       "diffusion: {timesteps: 50, p_uncond: 0.1}\n"
                       "train: {steps: 2, batch_size: 4, device: cpu, precision: fp32, log_every: 1, sample_every: 0, "
                       "ckpt_every: 2, num_threads: 1}\n");
  const std::string vae_folder = (test::source_dir() / "tests/data/interop/diffusers_vae").string();
  auto r = test::run_diffuse({"import", "--from", "diffusers-vae", "--weights", vae_folder, "--out", dir.file("vae.safetensors")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.err + r.out, "AutoencoderKL, channels [16, 32]");
  r = test::run_diffuse({"encode", "--vae", dir.file("vae.safetensors"), "--input", dir.file("images"), "--out",
                         dir.file("latents.safetensors"), "--batch-size", "5", "--device", "cpu"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto encoded = read_safetensors(dir.file("latents.safetensors"));
  EXPECT_EQ(encoded.find("latents").sizes().vec(), (std::vector<int64_t>{12, 4, 4, 4}));
  EXPECT_EQ(encoded.find("labels")[4].item<int64_t>(), 1);  // sorted by class: class1 holds items 4-7
  EXPECT_EQ(encoded.metadata.at("class_names"), R"(["class0","class1","class2"])");
  r = test::run_diffuse({"train", "--config", dir.file("dit.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string checkpoint = dir.file("run/ckpt/last.pt");
  r = test::run_diffuse({"sample", "--checkpoint", checkpoint, "--vae", dir.file("vae.safetensors"), "--steps", "2",
                         "--seeds", "0-3", "--format", "pt", "--out", dir.file("s"), "--device", "cpu", "--threads", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // 4×4 latents, decoded ×2 to 8×8 RGB; one per seed, cycling over the 3 classes; samples.pt keeps the latents.
  EXPECT_EQ(read_image(dir.file("s/seed2_class2.png"), 0).sizes().vec(), (std::vector<int64_t>{3, 8, 8}));
  EXPECT_TRUE(fs::exists(dir.file("s/grid.png")));
  torch::Tensor latents;
  torch::load(latents, dir.file("s/samples.pt"));
  EXPECT_EQ(latents.sizes().vec(), (std::vector<int64_t>{4, 4, 4, 4}));
  r = test::run_diffuse({"sample", "--checkpoint", checkpoint, "--steps", "2", "--out", dir.file("t")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "-channel latents, which are not images (PNG holds 1 or 3 channels); use --format pt "
                         "to write OUT/samples.pt, or give --vae FILE to decode them");
  EXPECT_FALSE(fs::exists(dir.file("t")));
}
