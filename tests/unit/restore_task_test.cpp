// Restore task YAML (configs/restore/*.yaml): every shipped file parses, round-trips
// through emit, and builds its operator for Fashion-MNIST; bad keys and values are
// ConfigErrors naming file:line and the key. Also the PSNR / SSIM metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <set>
#include <string>

#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/inverse/metrics.h"
#include "diffuse/inverse/restore_task.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

RestoreTask parse_text(const std::string& text) {
  ConfigNode root = ConfigNode::load_string(text, "<task>");
  return parse_restore_task(root);
}

std::string error_of(const std::string& text) {
  try {
    parse_text(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}


}  // namespace

TEST(RestoreTask, EveryShippedTaskParsesRoundTripsAndBuildsItsOperator) {
  const fs::path folder = test::source_dir() / "configs" / "restore";
  ASSERT_TRUE(fs::is_directory(folder)) << folder;
  int files = 0;
  std::set<std::string> operators;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    ++files;
    const RestoreTask first = load_restore_task(entry.path().string());
    const std::string emitted = to_yaml_string(emit_restore_task(first));
    ConfigNode again = ConfigNode::load_string(emitted, "<emitted>");
    const RestoreTask second = parse_restore_task(again);
    EXPECT_EQ(to_yaml_string(emit_restore_task(second)), emitted);
    EXPECT_EQ(second.op.name, first.op.name);
    EXPECT_EQ(second.steps, first.steps);
    EXPECT_EQ(second.dps.zeta, first.dps.zeta);
    EXPECT_GE(first.steps, 100);
    operators.insert(first.op.name);
    const auto op = make_operator(first.op, 1, 28);
    EXPECT_TRUE(op->is_linear());
  }
  EXPECT_EQ(files, 6);
  EXPECT_EQ(operators.size(), 6u);
}

TEST(RestoreTask, EmitWritesOnlyTheKeysTheTaskUses) {
  const RestoreTask t = parse_text("operator: {name: super_resolution, factor: 4}\nnoise: {type: poisson, rate: 100}\n");
  const std::string emitted = to_yaml_string(emit_restore_task(t));
  EXPECT_CONTAINS(emitted, "factor: 4");
  EXPECT_CONTAINS(emitted, "rate: 100");
  EXPECT_EQ(emitted.find("kernel_size"), std::string::npos) << emitted;
  EXPECT_EQ(emitted.find("sigma"), std::string::npos) << emitted;
  EXPECT_EQ(t.noise.type, MeasurementNoiseType::poisson);
}

TEST(RestoreTask, OverridesApplyBeforeParsing) {
  test::TempDir dir;
  const std::string path = dir.file("t.yaml");
  test::write_file(path, "operator:\n  name: gaussian_blur\n  kernel_size: 9\nzeta: 0.5\n");
  const RestoreTask t = load_restore_task(path, {"zeta=2.5", "steps=7", "operator.blur_sigma=1.25"});
  EXPECT_EQ(t.dps.zeta, 2.5);
  EXPECT_EQ(t.steps, 7);
  EXPECT_EQ(t.op.blur_sigma, 1.25);
  EXPECT_EQ(t.op.kernel_size, 9);
}

TEST(RestoreTask, UnknownOperatorListsTheValidNames) {
  const std::string message = error_of("operator:\n  name: deblur\n");
  EXPECT_CONTAINS(message, "<task>:2");
  EXPECT_CONTAINS(message, "operator.name");
  EXPECT_CONTAINS(message, "deblur");
  for (const auto& entry : operator_table()) EXPECT_CONTAINS(message, entry.name);
}

TEST(RestoreTask, BadKeysAndValuesNameTheKey) {
  // A key that only another operator reads is an error, not silently ignored.
  auto m = error_of("operator:\n  name: inpaint_box\n  keep_fraction: 0.5\n");
  EXPECT_CONTAINS(m, "operator.keep_fraction");
  EXPECT_CONTAINS(m, "<task>:3");
  m = error_of("operator: {name: gaussian_blur, kernel_size: 4}\n");
  EXPECT_CONTAINS(m, "operator.kernel_size");
  m = error_of("operator: {name: super_resolution, factor: 3}\n");
  EXPECT_CONTAINS(m, "operator.factor");
  m = error_of("operator: {name: inpaint_random, keep_fraction: 1.5}\n");
  EXPECT_CONTAINS(m, "operator.keep_fraction");
  m = error_of("operator: {name: motion_blur, intensity: -0.1}\n");
  EXPECT_CONTAINS(m, "operator.intensity");
  m = error_of("operator: {name: inpaint_box, box_top: 2, random_box: true}\n");
  EXPECT_CONTAINS(m, "operator.box_top");
  m = error_of("operator: {name: denoise}\nnoise: {type: gaussian, rate: 3}\n");
  EXPECT_CONTAINS(m, "noise.rate");
  m = error_of("operator: {name: denoise}\nnoise: {type: speckle}\n");
  EXPECT_CONTAINS(m, "noise.type");
  EXPECT_CONTAINS(m, "poisson");
  m = error_of("operator: {name: denoise}\nzeta: 0\n");
  EXPECT_CONTAINS(m, "zeta");
  m = error_of("operator: {name: denoise}\nclip_denoised: -1\n");
  EXPECT_CONTAINS(m, "clip_denoised");
  m = error_of("operator: {name: denoise}\nsteps: 0\n");
  EXPECT_CONTAINS(m, "steps");
  m = error_of("operator: {name: denoise}\nmethod: dsp\n");
  EXPECT_CONTAINS(m, "dps_linear");
  m = error_of("operator: {name: denoise}\nstesp: 10\n");
  EXPECT_CONTAINS(m, "stesp");
  m = error_of("noise: {type: gaussian}\n");
  EXPECT_CONTAINS(m, "operator");
  m = error_of("operator: {name: denoise}\ncfg: 3\n");
  EXPECT_CONTAINS(m, "cfg");
}

TEST(RestoreTask, MissingFileIsAConfigErrorNamingIt) {
  try {
    load_restore_task("/nonexistent/task.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_CONTAINS(e.what(), "/nonexistent/task.yaml");
  }
}

TEST(RestoreMetrics, PsnrFollowsItsDefinition) {
  const auto reference = torch::zeros({2, 1, 4, 4});
  auto image = reference.clone();
  image[0].fill_(0.2);   // MSE 0.04 → 10 log10(4 / 0.04) = 20 dB
  image[1][0][0][0] = 0.8;  // MSE 0.64 / 16 = 0.04 → 20 dB as well
  const auto p = psnr(image, reference);
  EXPECT_EQ(p.scalar_type(), torch::kFloat64);
  EXPECT_NEAR(p[0].item<double>(), 20.0, 1e-5);
  EXPECT_NEAR(p[1].item<double>(), 20.0, 1e-5);
  EXPECT_TRUE(std::isinf(psnr(reference, reference)[0].item<double>()));
}

TEST(RestoreMetrics, SsimIsOneForIdenticalImagesAndDropsWithNoise) {
  SeededNoise noise(std::vector<uint64_t>{1, 2}, torch::kCPU);
  const auto clean = noise.rand({3, 16, 16}, torch::kFloat64) * 2 - 1;
  EXPECT_LT((ssim(clean, clean) - 1.0).abs().max().item<double>(), 1e-12);
  const auto slightly = clean + 0.05 * noise.randn({3, 16, 16}, torch::kFloat64);
  const auto very = clean + 0.5 * noise.randn({3, 16, 16}, torch::kFloat64);
  const auto s_slight = ssim(slightly, clean), s_very = ssim(very, clean);
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_LT(s_slight[b].item<double>(), 1.0);
    EXPECT_LT(s_very[b].item<double>(), s_slight[b].item<double>());
  }
  // Symmetric in its arguments (eq. 13 is).
  EXPECT_TRUE(ssim(clean, very).allclose(s_very));
  EXPECT_THROW(ssim(torch::zeros({1, 1, 8, 8}), torch::zeros({1, 1, 8, 8})), DataError);
}
