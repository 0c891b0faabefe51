// `diffuse info --config`: the summary of a tiny IDX set, the preview grid, and the exit
// codes and one-line errors of bad input.
#include <gtest/gtest.h>

#include <filesystem>

#include "diffuse/io/image_io.h"
#include "support/dataset_files.h"
#include "support/expect_text.h"
#include "support/run_command.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

// A folder with a 70-item IDX train split of 6×6 images and a config pointing at it.
struct TinySet {
  test::TempDir dir;
  std::string config;
  TinySet() {
    test::write_idx_split(dir.file("idx"), "train", test::pattern_images(70, 6, 6),
                          test::pattern_labels(70), true);
    config = dir.file("tiny.yaml");
    test::write_file(config, "data:\n  type: idx\n  path: " + dir.file("idx") +
                                 "\n  hflip: true\ntrain:\n  seed: 3\n");
  }
};



}  // namespace

TEST(InfoCli, SummarisesTheDatasetAndWritesAPreview) {
  TinySet set;
  const std::string out = set.dir.file("out");
  const auto r = test::run_diffuse({"info", "--config", set.config, "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "items:    70");
  EXPECT_CONTAINS(r.out, "shape:    1x6x6");
  EXPECT_CONTAINS(r.out, "classes:  10 (0=0, 1=1");
  EXPECT_CONTAINS(r.out, "mean:     [");
  EXPECT_CONTAINS(r.out, "std:      [");
  const std::string preview = out + "/preview" + image_extension(1);
  EXPECT_TRUE(std::filesystem::exists(preview));
  // 64 tiles of 6×6 in 8 columns with 2-pixel padding: 8·8+2 = 66 on each side.
  EXPECT_EQ(read_image(preview, 0).sizes(), (std::vector<int64_t>{1, 66, 66}));
}

TEST(InfoCli, SetOverridesApply) {
  TinySet set;
  const auto r = test::run_diffuse({"info", "--config", set.config, "--set", "data.limit=10",
                                    "--set", "data.resolution=8", "--set", "data.channels=3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "items:    10");
  EXPECT_CONTAINS(r.out, "shape:    3x8x8");
}

TEST(InfoCli, UnknownFlagExitsWith2) {
  const auto r = test::run_diffuse({"info", "--confg", "x.yaml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_CONTAINS(r.err, "unknown flag '--confg'");
}

TEST(InfoCli, AMissingDatasetFolderIsSaidAndTheModelStillSummarised) {
  test::TempDir dir;
  const std::string config = dir.file("c.yaml");
  test::write_file(config, "data:\n  path: " + dir.file("nowhere") + "\nmodel:\n  preset: unet_small\n");
  const auto r = test::run_diffuse({"info", "--config", config});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_CONTAINS(r.out, "dataset:  missing: ");
  EXPECT_CONTAINS(r.out, dir.file("nowhere"));
  // idx data is MNIST-shaped (1×28×28, 10 classes) when it is not there to ask.
  EXPECT_CONTAINS(r.out, "model:    unet (preset unet_small), input 1x28x28, 10 classes");
  // A preview needs the data itself: still an error then.
  const auto preview = test::run_diffuse({"info", "--config", config, "--out", dir.file("out")});
  EXPECT_EQ(preview.exit_code, 1);
  EXPECT_EQ(test::line_count(preview.err), 1u) << preview.err;
  EXPECT_CONTAINS(preview.err, dir.file("nowhere"));
}

TEST(InfoCli, MisspelledConfigKeyNamesFileLineAndValidKeys) {
  test::TempDir dir;
  const std::string config = dir.file("c.yaml");
  test::write_file(config, "data:\n  type: idx\n  resolutoin: 32\n");
  const auto r = test::run_diffuse({"info", "--config", config});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(test::line_count(r.err), 1u) << r.err;
  EXPECT_CONTAINS(r.err, config + ":3");
  EXPECT_CONTAINS(r.err, "valid keys");
  EXPECT_CONTAINS(r.err, "resolution");
}

TEST(InfoCli, MissingCheckpointIsOneErrorLine) {
  test::TempDir dir;
  const auto r = test::run_diffuse({"info", "--checkpoint", dir.file("x.pt")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::line_count(r.err), 1u) << r.err;
  EXPECT_CONTAINS(r.err, dir.file("x.pt") + ": checkpoint file not found");
}
