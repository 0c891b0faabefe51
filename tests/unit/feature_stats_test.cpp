// Feature extraction from image sources, stats files, the network-identity check, the
// TorchScript feature network's preprocessing and the metrics' refusals.
#include "diffuse/eval/feature_stats.h"

#include <gtest/gtest.h>
#include <torch/script.h>

#include "diffuse/core/error.h"
#include "diffuse/eval/evaluate.h"
#include "diffuse/io/image_io.h"
#include "diffuse/io/tensor_file.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

// Features = per-image (mean, max) of the pixels; logits favour class 0 for dark images.
class PixelStatsNetwork : public FeatureNetwork {
 public:
  explicit PixelStatsNetwork(std::string identity) : identity_(std::move(identity)) {}
  FeatureBatch extract(const torch::Tensor& images) override {
    const auto flat = images.flatten(1).to(torch::kFloat32);
    const auto mean = flat.mean(1);
    return {torch::stack({mean, std::get<0>(flat.max(1))}, 1), torch::stack({-mean, mean}, 1)};
  }
  const std::string& identity() const override { return identity_; }
  int64_t num_classes() const override { return 2; }

 private:
  std::string identity_;
};

torch::Tensor constant_image(double value) { return torch::full({1, 4, 4}, value); }

}  // namespace

TEST(FeatureStats, ImageFolderLabelsComeFromTheNamesAndGridsAreSkipped) {
  test::TempDir dir;
  write_image(dir.file("seed0_class0.png"), constant_image(-0.5));
  write_image(dir.file("seed1_class1.png"), constant_image(0.5));
  write_image(dir.file("seed2_class1.png"), constant_image(1.0));
  write_image(dir.file("grid.png"), torch::ones({1, 9, 9}));
  PixelStatsNetwork net("stats");
  const FeatureSet set = extract_features(net, dir.path().string(), 0, 2);
  ASSERT_EQ(set.features.size(0), 3);
  EXPECT_EQ(set.labels, (std::vector<int64_t>{0, 1, 1}));
  // Pixel values survive the PNG round trip to 1/127.5.
  EXPECT_NEAR(set.features[0][0].item<double>(), -0.5, 0.01);
  EXPECT_NEAR(set.features[2][0].item<double>(), 1.0, 1e-6);
  EXPECT_DOUBLE_EQ(class_accuracy(set.logits, set.labels), 1.0);
  EXPECT_EQ(extract_features(net, dir.path().string(), 2, 8).features.size(0), 2);  // limit
}

TEST(FeatureStats, TensorFileTakesItsLabelsFromSamplingYaml) {
  test::TempDir dir;
  write_tensor_file(dir.file("samples.pt"), torch::stack({constant_image(0.0), constant_image(0.2), constant_image(0.4)}));
  test::write_file(dir.file("sampling.yaml"), "labels: [1, 0, 1]\n");
  PixelStatsNetwork net("stats");
  const FeatureSet set = extract_features(net, dir.file("samples.pt"), 0, 8);
  EXPECT_EQ(set.labels, (std::vector<int64_t>{1, 0, 1}));
  EXPECT_NEAR(set.features[1][0].item<double>(), 0.2, 1e-6);
  test::write_file(dir.file("sampling.yaml"), "labels: [1, 0]\n");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { extract_features(net, dir.file("samples.pt"), 0, 8); }),
                  "lists 2 labels for the 3 images");
}

TEST(FeatureStats, StatsFileRoundTripsAndIsTellableFromATensorFile) {
  test::TempDir dir;
  PixelStatsNetwork net("stats-net crc32=00000001");
  const auto images = torch::rand({20, 1, 4, 4}) * 2 - 1;
  std::vector<int64_t> labels(20);
  for (int64_t i = 0; i < 20; ++i) labels[static_cast<size_t>(i)] = i % 3;
  const FeatureSet set = extract_features(net, images, labels, "twenty images", 7);
  save_feature_stats(dir.file("ref.pt"), set);
  EXPECT_TRUE(is_feature_stats_file(dir.file("ref.pt")));
  const FeatureSet back = load_feature_stats(dir.file("ref.pt"));
  EXPECT_EQ(back.network, set.network);
  EXPECT_EQ(back.source, "twenty images");
  EXPECT_EQ(back.labels, labels);
  EXPECT_TRUE(torch::equal(back.features, set.features));
  EXPECT_TRUE(torch::equal(back.moments.mean, set.moments.mean));
  EXPECT_TRUE(torch::equal(back.moments.cov, set.moments.cov));
  EXPECT_NEAR(frechet_distance(back.moments, set.moments), 0.0, 1e-9);

  write_tensor_file(dir.file("images.pt"), images);
  EXPECT_FALSE(is_feature_stats_file(dir.file("images.pt")));
  EXPECT_CONTAINS(test::error_message<DataError>([&] { load_feature_stats(dir.file("images.pt")); }),
                  "not a diffuse stats file");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { extract_features(net, dir.file("ref.pt"), 0, 8); }),
                  "is a stats file");
}

TEST(FeatureStats, FeaturesOfAnotherNetworkAreRefused) {
  const auto images = torch::rand({10, 1, 4, 4});
  PixelStatsNetwork a("net-a"), b("net-b");
  const FeatureSet fa = extract_features(a, images, {}, "ref", 8);
  const FeatureSet fb = extract_features(b, images, {}, "samples", 8);
  const std::string message = test::error_message<DataError>([&] { compute_eval_metrics(fa, fb, {}); });
  EXPECT_CONTAINS(message, "net-a");
  EXPECT_CONTAINS(message, "net-b");
  EXPECT_CONTAINS(message, "cannot be compared");
}

TEST(FeatureStats, ClassAccuracyNeedsLabels) {
  const auto images = torch::rand({10, 1, 4, 4});
  PixelStatsNetwork net("n");
  const FeatureSet ref = extract_features(net, images, {}, "ref", 8);
  EvalMetricsOptions o;
  o.class_accuracy = true;
  o.kid_subsets = 2;
  EXPECT_CONTAINS(test::error_message<DataError>([&] { compute_eval_metrics(ref, ref, o); }), "intended labels");
  const FeatureSet labelled = extract_features(net, images, std::vector<int64_t>(10, 5), "samples", 8);
  EXPECT_CONTAINS(test::error_message<DataError>([&] { compute_eval_metrics(ref, labelled, o); }),
                  "outside the 2 classes");
}

TEST(FeatureStats, UnknownSourcesAreOneLineErrors) {
  PixelStatsNetwork net("n");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { extract_features(net, "/no/such/dir", 0, 8); }),
                  "no such folder or file");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { extract_features(net, "fashion:valid", 0, 8); }),
                  "fashion:train or fashion:test");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { extract_features(net, "latents:/x", 0, 8); }), "not images");
}

TEST(TorchScriptFeatures, PreparesImagesAsConfigured) {
  test::TempDir dir;
  // A scripted module returning its input's per-channel means and the image width.
  torch::jit::Module m("Probe");
  m.define(R"(
def forward(self, x):
    return torch.cat([x.mean(dim=[2, 3]), torch.full([x.size(0), 1], float(x.size(3)))], 1)
)");
  m.save(dir.file("probe.pt"));
  TorchScriptInput input;  // 3 channels, uint8 range
  input.size = 8;
  auto net = load_feature_network("torchscript:" + dir.file("probe.pt"), input, torch::kCPU);
  const auto grey = torch::full({2, 1, 4, 4}, 0.0);  // 127.5 rounds to 128
  const auto f = net->extract(grey).features;
  ASSERT_EQ(f.sizes(), (torch::IntArrayRef{2, 4}));
  EXPECT_FLOAT_EQ(f[0][0].item<float>(), 128.0f);
  EXPECT_FLOAT_EQ(f[0][2].item<float>(), 128.0f);
  EXPECT_FLOAT_EQ(f[0][3].item<float>(), 8.0f);  // resized
  input.range = FeatureInputRange::unit;
  input.channels = 1;
  input.size = 0;
  auto unit = load_feature_network("torchscript:" + dir.file("probe.pt"), input, torch::kCPU);
  const auto g = unit->extract(torch::full({1, 3, 4, 4}, 0.5)).features;
  ASSERT_EQ(g.sizes(), (torch::IntArrayRef{1, 2}));
  EXPECT_FLOAT_EQ(g[0][0].item<float>(), 0.75f);
  EXPECT_FLOAT_EQ(g[0][1].item<float>(), 4.0f);
  // The preprocessing is part of the identity: the two are not comparable.
  EXPECT_NE(net->identity(), unit->identity());
  EXPECT_EQ(net->num_classes(), 0);

  test::write_file(dir.file("junk.pt"), "not a module");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { load_torchscript_features(dir.file("junk.pt"), {}, torch::kCPU); }),
                  "not a TorchScript module");
}
