// Reading a run's metrics.jsonl into curve panels: training, evaluation and classifier rows,
// an unfinished last line, and the errors for missing files and malformed lines.
#include "diffuse/eval/run_curves.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "diffuse/core/error.h"
#include "diffuse/io/image_io.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

const CurvePanel& panel_titled(const std::vector<CurvePanel>& panels, const std::string& title) {
  for (const CurvePanel& panel : panels)
    if (panel.title == title) return panel;
  throw std::runtime_error("no panel titled '" + title + "'");
}

std::vector<std::string> titles(const std::vector<CurvePanel>& panels) {
  std::vector<std::string> names;
  for (const CurvePanel& panel : panels) names.push_back(panel.title);
  return names;
}

}  // namespace

TEST(RunCurves, BuildsPanelsFromTrainingEvaluationAndAccuracyRows) {
  test::TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  test::write_file(
      path,
      "{\"step\": 50, \"loss\": 0.5, \"lr\": 0.001, \"img_per_s\": 56.3}\n"
      "{\"step\": 100, \"loss\": 0.25, \"lr\": 0.0009}\n"
      "{\"step\": 100, \"fd\": 72.5, \"class_accuracy\": 0.9, \"eval_samples\": 1000}\n"
      "\n"
      "{\"step\": 100, \"test_accuracy\": {\"0\": 0.91, \"10\": 0.2, \"2\": 0.5}}\n"
      "{\"step\": 150, \"loss\": 0.125, \"lr\": 0.0008}\n"
      "{\"step\": 200, \"test_accuracy\": {\"0\": 0.95, \"10\": 0.3, \"2\": 0.6}}\n"
      "{\"step\": 200, \"loss\": 0.1, \"l");  // being written right now
  const std::vector<CurvePanel> panels = run_curve_panels(path);
  EXPECT_EQ(titles(panels),
            (std::vector<std::string>{"loss", "lr", "FD", "class accuracy", "test accuracy"}));

  const CurvePanel& loss = panel_titled(panels, "loss");
  EXPECT_TRUE(loss.log_y);
  EXPECT_EQ(loss.x_label, "step");
  ASSERT_EQ(loss.series.size(), 1u);
  EXPECT_EQ(loss.series[0].x, (std::vector<double>{50, 100, 150}));
  EXPECT_EQ(loss.series[0].y, (std::vector<double>{0.5, 0.25, 0.125}));

  const CurvePanel& lr = panel_titled(panels, "lr");
  EXPECT_FALSE(lr.log_y);
  EXPECT_EQ(lr.series[0].y, (std::vector<double>{0.001, 0.0009, 0.0008}));

  const CurvePanel& fd = panel_titled(panels, "FD");
  EXPECT_EQ(fd.series[0].x, (std::vector<double>{100}));
  EXPECT_EQ(fd.series[0].y, (std::vector<double>{72.5}));
  EXPECT_EQ(panel_titled(panels, "class accuracy").series[0].y, (std::vector<double>{0.9}));

  // One series per σ, in increasing σ (not the text order "0", "10", "2").
  const CurvePanel& test_accuracy = panel_titled(panels, "test accuracy");
  ASSERT_EQ(test_accuracy.series.size(), 3u);
  EXPECT_EQ(test_accuracy.series[0].name, "\u03c3=0");
  EXPECT_EQ(test_accuracy.series[1].name, "\u03c3=2");
  EXPECT_EQ(test_accuracy.series[2].name, "\u03c3=10");
  EXPECT_EQ(test_accuracy.series[1].x, (std::vector<double>{100, 200}));
  EXPECT_EQ(test_accuracy.series[1].y, (std::vector<double>{0.5, 0.6}));
  EXPECT_EQ(test_accuracy.series[2].y, (std::vector<double>{0.2, 0.3}));
}

TEST(RunCurves, ClassifierRunsGetATrainAccuracyPanelAndNullsBecomeGaps) {
  test::TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  test::write_file(path,
                   "{\"step\": 10, \"loss\": 2.1, \"train_accuracy\": 0.3, \"lr\": 0.001}\n"
                   "{\"step\": 20, \"loss\": null, \"train_accuracy\": 0.5, \"lr\": 0.001}\n");
  const std::vector<CurvePanel> panels = run_curve_panels(path);
  EXPECT_EQ(titles(panels), (std::vector<std::string>{"loss", "lr", "train accuracy"}));
  EXPECT_EQ(panel_titled(panels, "train accuracy").series[0].y, (std::vector<double>{0.3, 0.5}));
  const std::vector<double>& loss = panel_titled(panels, "loss").series[0].y;
  ASSERT_EQ(loss.size(), 2u);
  EXPECT_TRUE(std::isnan(loss[1]));
}

TEST(RunCurves, AFreshRunStillHasLossAndLrPanels) {
  test::TempDir dir;
  test::write_file(dir.file("metrics.jsonl"), "");
  const std::vector<CurvePanel> panels = run_curve_panels(dir.file("metrics.jsonl"));
  EXPECT_EQ(titles(panels), (std::vector<std::string>{"loss", "lr"}));
  EXPECT_TRUE(panels[0].series[0].x.empty());
}

TEST(RunCurves, AMalformedLineIsADataErrorNamingIt) {
  test::TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  test::write_file(path,
                   "{\"step\": 50, \"loss\": 0.5}\n"
                   "{\"step\": 100, \"loss\": }\n"
                   "{\"step\": 150, \"loss\": 0.4}\n");
  std::string message = test::error_message<DataError>([&] { run_curve_panels(path); });
  EXPECT_CONTAINS(message, path + ":2: not valid JSON");

  // A broken last line that ends in a newline was written whole: an error too.
  test::write_file(path, "{\"step\": 50, \"loss\": 0.5}\n{\"step\": 100, \"lo\n");
  message = test::error_message<DataError>([&] { run_curve_panels(path); });
  EXPECT_CONTAINS(message, path + ":2: not valid JSON");

  test::write_file(path, "{\"step\": 50, \"loss\": 0.5}\n[1, 2]\n");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { run_curve_panels(path); }),
                  path + ":2: expected one JSON object per line");

  test::write_file(path, "{\"step\": 50, \"loss\": \"low\"}\n");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { run_curve_panels(path); }),
                  path + ":1: expected a number for \"loss\"");

  test::write_file(path, "{\"loss\": 0.5}\n");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { run_curve_panels(path); }),
                  path + ":1: expected a number for \"step\"");

  test::write_file(path, "{\"step\": 5, \"test_accuracy\": 0.9}\n");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { run_curve_panels(path); }),
                  path + ":1: expected \"test_accuracy\" to be an object");
}

TEST(RunCurves, AMissingFileOrRunFolderIsADataErrorNamingIt) {
  test::TempDir dir;
  const std::string missing = dir.file("metrics.jsonl");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { run_curve_panels(missing); }),
                  missing + ": metrics file not found");
  const std::string no_run = dir.file("no_run");
  EXPECT_CONTAINS(
      test::error_message<DataError>([&] { write_run_curves(no_run, dir.file("c.ppm")); }),
      no_run + ": run folder not found");
  EXPECT_FALSE(std::filesystem::exists(dir.file("c.ppm")));
}

TEST(RunCurves, WritesOnePanelPerCurveIntoTheImage) {
  test::TempDir dir;
  test::write_file(dir.file("run/metrics.jsonl"),
                   "{\"step\": 50, \"loss\": 0.5, \"lr\": 0.001}\n"
                   "{\"step\": 100, \"loss\": 0.2, \"lr\": 0.0005}\n"
                   "{\"step\": 100, \"fd\": 80.5}\n");
  const std::string out = dir.file("run/curves" + image_extension(3));
  write_run_curves(dir.file("run"), out);
  EXPECT_EQ(read_image(out, 0).sizes(), (std::vector<int64_t>{3, 320, 3 * 480}));
}
