// `diffuse plot`: the curves image of a run folder, --out, and the errors for a missing run
// and a missing --run.
#include <gtest/gtest.h>

#include <filesystem>

#include "diffuse/io/image_io.h"
#include "support/expect_text.h"
#include "support/run_command.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

// A run folder whose metrics.jsonl has training rows and one evaluation row.
void write_run(const test::TempDir& dir) {
  test::write_file(dir.file("run/metrics.jsonl"),
                   "{\"step\": 50, \"loss\": 0.6, \"lr\": 0.001}\n"
                   "{\"step\": 100, \"loss\": 0.1, \"lr\": 0.0009}\n"
                   "{\"step\": 100, \"fd\": 90.1, \"eval_samples\": 100}\n");
}

}  // namespace

TEST(PlotCli, WritesTheCurvesIntoTheRunFolder) {
  test::TempDir dir;
  write_run(dir);
  const auto r = test::run_diffuse({"plot", "--run", dir.file("run")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string curves = dir.file("run/curves" + image_extension(3));
  EXPECT_CONTAINS(r.out, curves);
  // loss, lr and FD side by side.
  EXPECT_EQ(read_image(curves, 0).sizes(), (std::vector<int64_t>{3, 320, 3 * 480}));
}

TEST(PlotCli, OutChoosesTheFile) {
  test::TempDir dir;
  write_run(dir);
  const std::string out = dir.file("elsewhere.ppm");
  const auto r = test::run_diffuse({"plot", "--run", dir.file("run"), "--out", out});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(dir.file("run/curves" + image_extension(3))));
}

TEST(PlotCli, AMissingRunIsOneErrorLineNamingIt) {
  test::TempDir dir;
  const auto r = test::run_diffuse({"plot", "--run", dir.file("nowhere")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(test::line_count(r.err), 1u) << r.err;
  EXPECT_CONTAINS(r.err, dir.file("nowhere"));
}

TEST(PlotCli, WithoutRunItIsAUsageError) {
  const auto r = test::run_diffuse({"plot"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_CONTAINS(r.err, "needs --run");
}
