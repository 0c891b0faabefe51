// Dataset readers (IDX raw/gzip, CIFAR-10 binary, latents), their error messages, the
// deterministic transforms, dataset slices and channel statistics.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "diffuse/core/error.h"
#include "diffuse/data/cifar_dataset.h"
#include "diffuse/data/dataset.h"
#include "diffuse/data/dataset_slice.h"
#include "diffuse/data/idx_dataset.h"
#include "diffuse/data/image_transform.h"
#include "diffuse/data/latent_dataset.h"
#include "diffuse/io/safetensors.h"
#include "support/dataset_files.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

DataOptions idx_options(const std::string& folder, const std::string& split = "train") {
  DataOptions options;
  options.type = DatasetType::idx;
  options.path = folder;
  options.split = split;
  return options;
}



}  // namespace

// ---- IDX ---------------------------------------------------------------------------------

TEST(IdxDataset, ReadsRawFilesWithExactPixels) {
  test::TempDir dir;
  const auto images = test::pattern_images(5, 4, 3);
  test::write_idx_split(dir.path().string(), "train", images, test::pattern_labels(5), false);
  auto dataset = make_dataset(idx_options(dir.path().string()));
  const DatasetInfo& info = dataset->info();
  EXPECT_EQ(info.size, 5);
  EXPECT_EQ(info.channels, 1);
  EXPECT_EQ(info.height, 4);
  EXPECT_EQ(info.width, 3);
  ASSERT_EQ(info.class_names.size(), 10u);
  EXPECT_EQ(info.class_names[3], "3");
  const Example e = dataset->get(2);
  EXPECT_EQ(e.label, 2);
  ASSERT_EQ(e.image.sizes(), (std::vector<int64_t>{1, 4, 3}));
  const auto expected = images[2].unsqueeze(0).to(torch::kFloat32) / 127.5 - 1.0;
  EXPECT_TRUE(torch::allclose(e.image, expected, 0, 1e-6));
}

TEST(IdxDataset, ReadsGzipTestSplitAndFashionNames) {
  test::TempDir dir;
  const std::string folder = (dir.path() / "my-fashion-set").string();
  const auto images = test::pattern_images(7, 6, 6);
  test::write_idx_split(folder, "t10k", images, test::pattern_labels(7), true);
  auto dataset = make_dataset(idx_options(folder, "test"));
  EXPECT_EQ(dataset->info().size, 7);
  EXPECT_EQ(dataset->info().class_names[9], "Ankle boot");
  EXPECT_EQ(dataset->get(6).label, 6);
  EXPECT_TRUE(torch::equal(torch::round((dataset->get(4).image + 1) * 127.5).to(torch::kUInt8),
                           images[4].unsqueeze(0)));
}

TEST(IdxDataset, LimitKeepsFirstItems) {
  test::TempDir dir;
  test::write_idx_split(dir.path().string(), "train", test::pattern_images(9, 2, 2),
                        test::pattern_labels(9), false);
  DataOptions options = idx_options(dir.path().string());
  options.limit = 4;
  auto dataset = make_dataset(options);
  EXPECT_EQ(dataset->info().size, 4);
  EXPECT_EQ(dataset->get(3).label, 3);
  EXPECT_THROW(dataset->get(4), DataError);
}

TEST(IdxDataset, MissingFileListsWhatWasLookedFor) {
  test::TempDir dir;
  test::write_file(dir.file("train-images-idx3-ubyte"), test::idx_images_bytes(test::pattern_images(2, 2, 2)));
  const std::string m = test::error_message<DataError>([&] { make_dataset(idx_options(dir.path().string())); });
  EXPECT_CONTAINS(m, "train-labels-idx1-ubyte.gz");
  EXPECT_CONTAINS(m, "and train-labels-idx1-ubyte");
  EXPECT_CONTAINS(m, dir.path().string());
}

TEST(IdxDataset, MissingFolderIsNamed) {
  const std::string m = test::error_message<DataError>([] { make_dataset(idx_options("/no/such/folder")); });
  EXPECT_CONTAINS(m, "/no/such/folder");
  EXPECT_CONTAINS(m, "does not exist");
}

TEST(IdxDataset, WrongMagicShowsExpectedAndFoundHex) {
  test::TempDir dir;
  const auto images = test::pattern_images(2, 2, 2);
  const auto labels = test::pattern_labels(2);
  // Label bytes where the images should be: magic 0x801 instead of 0x803.
  test::write_file(dir.file("train-images-idx3-ubyte"), test::idx_labels_bytes(labels));
  test::write_file(dir.file("train-labels-idx1-ubyte"), test::idx_labels_bytes(labels));
  const std::string m = test::error_message<DataError>([&] { make_dataset(idx_options(dir.path().string())); });
  EXPECT_CONTAINS(m, "train-images-idx3-ubyte");
  EXPECT_CONTAINS(m, "expected 0x00000803");
  EXPECT_CONTAINS(m, "found 0x00000801");
}

TEST(IdxDataset, TruncatedFileIsReported) {
  test::TempDir dir;
  std::string bytes = test::idx_images_bytes(test::pattern_images(3, 4, 4));
  bytes.resize(bytes.size() - 5);
  test::write_file(dir.file("train-images-idx3-ubyte"), bytes);
  test::write_file(dir.file("train-labels-idx1-ubyte"), test::idx_labels_bytes(test::pattern_labels(3)));
  const std::string m = test::error_message<DataError>([&] { make_dataset(idx_options(dir.path().string())); });
  EXPECT_CONTAINS(m, "train-images-idx3-ubyte");
  EXPECT_CONTAINS(m, "truncated");
  EXPECT_CONTAINS(m, "expected 64 bytes");
  EXPECT_CONTAINS(m, "found 59");
}

TEST(IdxDataset, TruncatedGzipStreamIsReported) {
  test::TempDir dir;
  test::write_idx_split(dir.path().string(), "train", test::pattern_images(50, 8, 8),
                        test::pattern_labels(50), true);
  const std::string gz = dir.file("train-images-idx3-ubyte.gz");
  const auto size = std::filesystem::file_size(gz);
  std::filesystem::resize_file(gz, size / 2);
  const std::string m = test::error_message<DataError>([&] { make_dataset(idx_options(dir.path().string())); });
  EXPECT_CONTAINS(m, "train-images-idx3-ubyte.gz");
}

TEST(IdxDataset, CountMismatchNamesBothFiles) {
  test::TempDir dir;
  test::write_file(dir.file("train-images-idx3-ubyte"), test::idx_images_bytes(test::pattern_images(3, 2, 2)));
  test::write_file(dir.file("train-labels-idx1-ubyte"), test::idx_labels_bytes(test::pattern_labels(4)));
  const std::string m = test::error_message<DataError>([&] { make_dataset(idx_options(dir.path().string())); });
  EXPECT_CONTAINS(m, "holds 3 images");
  EXPECT_CONTAINS(m, "holds 4 labels");
  EXPECT_CONTAINS(m, "train-labels-idx1-ubyte");
}

// ---- transforms -----------------------------------------------------------------------

TEST(ImageTransform, ExactPixelValuesOfATinyImage) {
  const auto pixels = torch::tensor({0, 255, 128, 1}, torch::kUInt8).view({1, 2, 2});
  const auto out = ImageTransform{}(pixels);
  const auto expected = torch::tensor({-1.0f, 1.0f, 128 / 127.5f - 1, 1 / 127.5f - 1}).view({1, 2, 2});
  EXPECT_TRUE(torch::allclose(out, expected, 0, 1e-6)) << out;
}

TEST(ImageTransform, ChannelConversion) {
  const auto grey = torch::tensor({0, 255, 51, 102}, torch::kUInt8).view({1, 2, 2});
  const auto rgb = ImageTransform{3, 0}(grey);
  ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{3, 2, 2}));
  EXPECT_TRUE(torch::equal(rgb[0], rgb[2]));
  EXPECT_FLOAT_EQ(rgb[1][0][1].item<float>(), 1.0f);

  // Pure red, green, blue, white → BT.601 luma 0.299, 0.587, 0.114, 1 of full scale.
  auto colour = torch::zeros({3, 1, 4}, torch::kUInt8);
  colour[0][0][0] = 255;
  colour[1][0][1] = 255;
  colour[2][0][2] = 255;
  colour.select(2, 3).fill_(255);
  const auto luma = ImageTransform{1, 0}(colour);
  ASSERT_EQ(luma.sizes(), (std::vector<int64_t>{1, 1, 4}));
  const auto expected = torch::tensor({0.299f, 0.587f, 0.114f, 1.0f}) * 2 - 1;
  EXPECT_TRUE(torch::allclose(luma.flatten(), expected, 0, 1e-5)) << luma;
}

TEST(ImageTransform, ResizeAndCentreCropShapes) {
  const auto wide = torch::randint(0, 256, {3, 20, 40}, torch::kUInt8);
  EXPECT_EQ(ImageTransform({0, 10})(wide).sizes(), (std::vector<int64_t>{3, 10, 10}));
  EXPECT_EQ(ImageTransform({1, 32})(wide).sizes(), (std::vector<int64_t>{1, 32, 32}));
  EXPECT_EQ(scaled_size(20, 40, 10), (std::pair<int64_t, int64_t>{10, 20}));
  EXPECT_EQ(scaled_size(30, 20, 10), (std::pair<int64_t, int64_t>{15, 10}));
  const auto up = ImageTransform({0, 64})(wide);
  EXPECT_GE(up.min().item<float>(), -1.0f);
  EXPECT_LE(up.max().item<float>(), 1.0f);
}

TEST(ImageTransform, CentreCropTakesTheMiddle) {
  // 2×4 image, columns 0..3 valued 0, 100, 200, 250; resolution 2 keeps columns 1 and 2.
  const auto pixels = torch::tensor({0, 100, 200, 250, 0, 100, 200, 250}, torch::kUInt8).view({1, 2, 4});
  const auto out = ImageTransform({0, 2})(pixels);
  const auto expected = torch::tensor({100, 200, 100, 200}).view({1, 2, 2}).to(torch::kFloat32) / 127.5 - 1;
  EXPECT_TRUE(torch::allclose(out, expected, 0, 1e-6)) << out;
}

TEST(ImageTransform, DownscaleAveragesAreas) {
  // 2×2 → 1×1 is the mean of the four pixels.
  const auto pixels = torch::tensor({0, 50, 100, 250}, torch::kUInt8).view({1, 2, 2});
  const auto out = ImageTransform({0, 1})(pixels);
  EXPECT_NEAR(out.item<float>(), 100.0 / 127.5 - 1, 1e-6);
}

TEST(IdxDataset, ResolutionAndChannelsOptionsApplyInGet) {
  test::TempDir dir;
  test::write_idx_split(dir.path().string(), "train", test::pattern_images(3, 28, 28),
                        test::pattern_labels(3), false);
  DataOptions options = idx_options(dir.path().string());
  options.resolution = 32;
  options.channels = 3;
  auto dataset = make_dataset(options);
  EXPECT_EQ(dataset->info().channels, 3);
  EXPECT_EQ(dataset->info().height, 32);
  EXPECT_EQ(dataset->get(0).image.sizes(), (std::vector<int64_t>{3, 32, 32}));
}

// ---- CIFAR-10 -------------------------------------------------------------------------

TEST(CifarDataset, ReadsBatchesInOrderWithMetaNames) {
  test::TempDir dir;
  const auto images = torch::randint(0, 256, {6, 3, 32, 32}, torch::kUInt8);
  const auto labels = torch::tensor({3, 1, 4, 1, 5, 9});
  for (int k = 1; k <= 5; ++k) {
    const int64_t n = k == 1 ? 2 : 1;
    const int64_t first = k == 1 ? 0 : k;
    test::write_file(dir.file("data_batch_" + std::to_string(k) + ".bin"),
                     test::cifar_batch_bytes(images.narrow(0, first, n), labels.narrow(0, first, n)));
  }
  test::write_file(dir.file("batches.meta.txt"), "a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n");
  DataOptions options;
  options.type = DatasetType::cifar10;
  options.path = dir.path().string();
  auto dataset = make_dataset(options);
  EXPECT_EQ(dataset->info().size, 6);
  EXPECT_EQ(dataset->info().channels, 3);
  EXPECT_EQ(dataset->info().height, 32);
  EXPECT_EQ(dataset->info().class_names[4], "a4");
  for (int64_t i = 0; i < 6; ++i) {
    const Example e = dataset->get(i);
    EXPECT_EQ(e.label, labels[i].item<int64_t>());
    EXPECT_TRUE(torch::equal(torch::round((e.image + 1) * 127.5).to(torch::kUInt8), images[i]));
  }
}

TEST(CifarDataset, TestSplitWithStandardNames) {
  test::TempDir dir;
  test::write_file(dir.file("test_batch.bin"),
                   test::cifar_batch_bytes(torch::zeros({2, 3, 32, 32}, torch::kUInt8), torch::tensor({0, 9})));
  DataOptions options;
  options.type = DatasetType::cifar10;
  options.path = dir.path().string();
  options.split = "test";
  auto dataset = make_dataset(options);
  EXPECT_EQ(dataset->info().size, 2);
  EXPECT_EQ(dataset->info().class_names[9], "truck");
  EXPECT_EQ(dataset->get(1).label, 9);
}

TEST(CifarDataset, MissingFilesAreListed) {
  test::TempDir dir;
  test::write_file(dir.file("data_batch_1.bin"),
                   test::cifar_batch_bytes(torch::zeros({1, 3, 32, 32}, torch::kUInt8), torch::tensor({0})));
  DataOptions options;
  options.type = DatasetType::cifar10;
  options.path = dir.path().string();
  const std::string m = test::error_message<DataError>([&] { make_dataset(options); });
  EXPECT_CONTAINS(m, "data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin");
  EXPECT_EQ(m.find("data_batch_1.bin,"), std::string::npos) << m;
}

TEST(CifarDataset, SizeNotAMultipleOfTheRecord) {
  test::TempDir dir;
  test::write_file(dir.file("test_batch.bin"), std::string(3073 * 2 + 10, '\0'));
  DataOptions options;
  options.type = DatasetType::cifar10;
  options.path = dir.path().string();
  options.split = "test";
  const std::string m = test::error_message<DataError>([&] { make_dataset(options); });
  EXPECT_CONTAINS(m, "test_batch.bin");
  EXPECT_CONTAINS(m, "6156");
  EXPECT_CONTAINS(m, "3073");
}

// ---- latents --------------------------------------------------------------------------

TEST(LatentDataset, ReadsUnscaledLatents) {
  test::TempDir dir;
  const auto latents = torch::randn({5, 4, 8, 8}) * 3;
  const auto labels = torch::tensor({0, 2, 1, 2, 0}, torch::kInt64);
  torch::save(std::vector<torch::Tensor>{latents, labels}, dir.file("z.pt"));
  DataOptions options;
  options.type = DatasetType::latents;
  options.path = dir.file("z.pt");
  auto dataset = make_dataset(options);
  EXPECT_EQ(dataset->info().size, 5);
  EXPECT_EQ(dataset->info().channels, 4);
  EXPECT_EQ(dataset->info().class_names.size(), 3u);
  const Example e = dataset->get(3);
  EXPECT_EQ(e.label, 2);
  EXPECT_TRUE(torch::equal(e.image, latents[3]));
}

// The file Python's safetensors.torch.save_file({"latents": z, "labels": y}, p) writes:
// any float and integer dtypes, converted on reading.
TEST(LatentDataset, ReadsSafetensorsFiles) {
  test::TempDir dir;
  const auto latents = (torch::randn({4, 4, 2, 2}) * 3).to(torch::kFloat16);
  const auto labels = torch::tensor({1, 0, 1, 1}, torch::kInt32);
  write_safetensors(dir.file("z.safetensors"), {{{"labels", labels}, {"latents", latents}}, {}});
  DataOptions options;
  options.type = DatasetType::latents;
  options.path = dir.file("z.safetensors");
  auto dataset = make_dataset(options);
  EXPECT_EQ(dataset->info().size, 4);
  EXPECT_EQ(dataset->info().class_names.size(), 2u);
  const Example e = dataset->get(2);
  EXPECT_EQ(e.label, 1);
  EXPECT_EQ(e.image.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(e.image, latents[2].to(torch::kFloat32)));

  write_safetensors(dir.file("unnamed.safetensors"), {{{"z", latents}}, {}});
  options.path = dir.file("unnamed.safetensors");
  const std::string m = test::error_message<DataError>([&] { make_dataset(options); });
  EXPECT_CONTAINS(m, "unnamed.safetensors: a latents safetensors file holds the tensors 'latents' [N, C, H, W] and "
                     "'labels' [N]");
  EXPECT_CONTAINS(m, "found 1 tensor(s), the first 'z'");
}

TEST(LatentDataset, WrongShapesAndForeignFiles) {
  test::TempDir dir;
  DataOptions options;
  options.type = DatasetType::latents;

  torch::save(std::vector<torch::Tensor>{torch::randn({5, 8, 8}), torch::zeros({5}, torch::kInt64)},
              dir.file("flat.pt"));
  options.path = dir.file("flat.pt");
  std::string m = test::error_message<DataError>([&] { make_dataset(options); });
  EXPECT_CONTAINS(m, "flat.pt");
  EXPECT_CONTAINS(m, "[N, C, H, W]");
  EXPECT_CONTAINS(m, "[5, 8, 8]");

  torch::save(std::vector<torch::Tensor>{torch::randn({5, 4, 8, 8}), torch::zeros({3}, torch::kInt64)},
              dir.file("labels.pt"));
  options.path = dir.file("labels.pt");
  m = test::error_message<DataError>([&] { make_dataset(options); });
  EXPECT_CONTAINS(m, "labels must be an integer tensor [5]");
  EXPECT_CONTAINS(m, "[3]");

  test::write_file(dir.file("foreign.pt"), "this is not a torch archive");
  options.path = dir.file("foreign.pt");
  m = test::error_message<DataError>([&] { make_dataset(options); });
  EXPECT_CONTAINS(m, "foreign.pt: not a latents file");

  options.path = dir.file("missing.pt");
  m = test::error_message<DataError>([&] { make_dataset(options); });
  EXPECT_CONTAINS(m, "missing.pt: latents file does not exist");
}

// ---- statistics -----------------------------------------------------------------------

TEST(ChannelStats, MatchesDirectComputation) {
  test::TempDir dir;
  const auto images = test::pattern_images(300, 5, 7);
  test::write_idx_split(dir.path().string(), "train", images, test::pattern_labels(300), false);
  auto dataset = make_dataset(idx_options(dir.path().string()));
  const auto scaled = images.to(torch::kFloat64) / 127.5 - 1;
  for (bool parallel : {false, true}) {
    const ChannelStats stats = compute_channel_stats(*dataset, parallel);
    ASSERT_EQ(stats.mean.size(), 1u);
    // The dataset hands out float32 pixels (rounding ≤ 6e-8 each), the reference is float64.
    EXPECT_NEAR(stats.mean[0], scaled.mean().item<double>(), 1e-7);
    EXPECT_NEAR(stats.std[0], scaled.std(/*unbiased=*/false).item<double>(), 1e-7);
  }
}

// ---- slices ---------------------------------------------------------------------------

TEST(DatasetSlice, ParsesTheThreeForms) {
  test::TempDir dir;
  setenv("FASHION_MNIST_DIR", dir.path().c_str(), 1);
  DatasetSlice s = parse_dataset_slice("fashion:test[0:64]");
  EXPECT_EQ(s.data.type, DatasetType::idx);
  EXPECT_EQ(s.data.path, dir.path().string());
  EXPECT_EQ(s.data.split, "test");
  EXPECT_EQ(s.begin, 0);
  EXPECT_EQ(s.end, 64);
  unsetenv("FASHION_MNIST_DIR");
  EXPECT_EQ(parse_dataset_slice("fashion:train[1:2]").data.path, "/usr/share/datasets/fashion-mnist");

  setenv("MNIST_DIR", "/data/mnist", 1);
  s = parse_dataset_slice("mnist:train[10:20]");
  EXPECT_EQ(s.data.path, "/data/mnist");
  EXPECT_EQ(s.begin, 10);
  EXPECT_EQ(s.end, 20);
  unsetenv("MNIST_DIR");
  EXPECT_CONTAINS(test::error_message<DataError>([] { parse_dataset_slice("mnist:train[10:20]"); }), "MNIST_DIR");

  setenv("CIFAR10_DIR", "/data/cifar", 1);
  s = parse_dataset_slice("cifar10:test[0:8]");
  EXPECT_EQ(s.data.type, DatasetType::cifar10);
  EXPECT_EQ(s.data.path, "/data/cifar");
  unsetenv("CIFAR10_DIR");

  EXPECT_TRUE(looks_like_dataset_slice("fashion:test[0:64]"));
  EXPECT_FALSE(looks_like_dataset_slice("images/cat.png"));
}

TEST(DatasetSlice, BadFormsListTheValidOnes) {
  for (const char* bad : {"fashion:test", "fashion:val[0:4]", "svhn:test[0:4]", "fashion:test[4:2]",
                          "fashion:test[a:b]"}) {
    const std::string m = test::error_message<DataError>([&] { parse_dataset_slice(bad); });
    EXPECT_CONTAINS(m, bad);
    if (std::string(bad) != "fashion:test[4:2]") {
      EXPECT_CONTAINS(m, "cifar10:<split>[<begin>:<end>]");
    }
  }
}

TEST(DatasetSlice, LoadsTheRangeAndRejectsOverrun) {
  test::TempDir dir;
  test::write_idx_split(dir.path().string(), "t10k", test::pattern_images(10, 3, 3),
                        test::pattern_labels(10), true);
  setenv("MNIST_DIR", dir.path().c_str(), 1);
  const Batch batch = load_dataset_slice(parse_dataset_slice("mnist:test[2:5]"));
  EXPECT_EQ(batch.images.sizes(), (std::vector<int64_t>{3, 1, 3, 3}));
  EXPECT_EQ(batch.labels[0].item<int64_t>(), 2);
  const std::string m = test::error_message<DataError>([] { load_dataset_slice(parse_dataset_slice("mnist:test[5:11]")); });
  EXPECT_CONTAINS(m, "holds 10 items");
  unsetenv("MNIST_DIR");
}

// ---- the real Fashion-MNIST -----------------------------------------------------------

TEST(FashionMnist, RealFilesHaveTheKnownShape) {
  std::string folder = "/usr/share/datasets/fashion-mnist";
  if (const char* env = std::getenv("FASHION_MNIST_DIR")) folder = env;
  if (!std::filesystem::is_directory(folder)) GTEST_SKIP() << "no Fashion-MNIST at " << folder;
  const auto start = std::chrono::steady_clock::now();
  auto train = make_dataset(idx_options(folder, "train"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ info ] Fashion-MNIST train loaded in " << seconds << " s\n";
  auto test_set = make_dataset(idx_options(folder, "test"));
  EXPECT_EQ(train->info().size, 60000);
  EXPECT_EQ(test_set->info().size, 10000);
  EXPECT_EQ(train->info().channels, 1);
  EXPECT_EQ(train->info().height, 28);
  EXPECT_EQ(train->info().width, 28);
  ASSERT_EQ(train->info().class_names.size(), 10u);
  EXPECT_EQ(train->info().class_names[0], "T-shirt/top");
  EXPECT_EQ(train->get(0).label, 9);  // the first training item is an ankle boot
  const auto image = train->get(0).image;
  EXPECT_GE(image.min().item<float>(), -1.0f);
  EXPECT_LE(image.max().item<float>(), 1.0f);
}
