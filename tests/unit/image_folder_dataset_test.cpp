// Image folders: classes from sorted sub-folders, resize + centre crop, channels, and the
// errors for missing/empty folders, corrupt files and images smaller than the resolution.
#include <gtest/gtest.h>

#include <filesystem>

#include "diffuse/core/error.h"
#include "diffuse/data/dataset.h"
#include "diffuse/data/image_folder_dataset.h"
#include "diffuse/io/image_io.h"
#include "support/expect_text.h"
#include "support/test_paths.h"


using namespace diffuse;

namespace {

DataOptions folder_options(const std::string& path, int resolution = 0, int channels = 0) {
  DataOptions options;
  options.type = DatasetType::image_folder;
  options.path = path;
  options.resolution = resolution;
  options.channels = channels;
  return options;
}



#if DIFFUSE_WITH_OPENCV
struct Rgb {
  float r, g, b;  // in [-1, 1]
};

// Writes a width × height RGB PNG of one colour (through OpenCV, by write_image: the test
// target does not see OpenCV's headers).
void write_png(const std::string& path, int width, int height, Rgb colour) {
  auto image = torch::empty({3, height, width});
  image[0].fill_(colour.r);
  image[1].fill_(colour.g);
  image[2].fill_(colour.b);
  write_image(path, image);
}

// A 24-bit BMP written byte by byte (BGR pixel order, rows bottom-up padded to 4 bytes), so
// that the RGB order of the reader is checked against the file format itself.
void write_bmp(const std::string& path, int width, int height, uint8_t r, uint8_t g, uint8_t b) {
  const int row = (3 * width + 3) / 4 * 4;
  const int pixels = row * height;
  std::string bytes;
  const auto put = [&](uint32_t value, int count) {
    for (int i = 0; i < count; ++i) bytes.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  };
  bytes += "BM";
  put(54 + pixels, 4);
  put(0, 4);
  put(54, 4);
  put(40, 4);
  put(width, 4);
  put(height, 4);
  put(1, 2);
  put(24, 2);
  put(0, 4);
  put(pixels, 4);
  put(2835, 4);
  put(2835, 4);
  put(0, 4);
  put(0, 4);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      bytes.push_back(static_cast<char>(b));
      bytes.push_back(static_cast<char>(g));
      bytes.push_back(static_cast<char>(r));
    }
    bytes.append(static_cast<size_t>(row - 3 * width), '\0');
  }
  test::write_file(path, bytes);
}

constexpr Rgb kRed{1, -1, -1}, kGreen{-1, 1, -1}, kBlue{-1, -1, 1}, kBlack{-1, -1, -1},
    kWhite{1, 1, 1};
#endif

}  // namespace

TEST(ImageFolder, ListsClassesInSortedOrder) {
  test::TempDir dir;
  test::write_file(dir.file("zebra/b.png"), "x");
  test::write_file(dir.file("zebra/a.jpg"), "x");
  test::write_file(dir.file("apple/c.bmp"), "x");
  test::write_file(dir.file("apple/notes.txt"), "x");
  test::write_file(dir.file("empty/readme.md"), "x");
  const ImageFolderListing listing = list_image_folder(dir.path().string());
  EXPECT_EQ(listing.class_names, (std::vector<std::string>{"apple", "zebra"}));
  ASSERT_EQ(listing.entries.size(), 3u);
  EXPECT_EQ(listing.entries[0].label, 0);
  EXPECT_EQ(std::filesystem::path(listing.entries[1].file).filename(), "a.jpg");
  EXPECT_EQ(listing.entries[2].label, 1);
}

TEST(ImageFolder, MissingAndEmptyFolders) {
  EXPECT_CONTAINS(test::error_message<DataError>([] { list_image_folder("/no/such/images"); }), "/no/such/images: image folder does not exist");
  test::TempDir dir;
  test::write_file(dir.file("a/readme.txt"), "x");
  const std::string m = test::error_message<DataError>([&] { list_image_folder(dir.path().string()); });
  EXPECT_CONTAINS(m, "no images found");
  EXPECT_CONTAINS(m, dir.path().string());
}

#if DIFFUSE_WITH_OPENCV

TEST(ImageFolder, LoadsResizesAndCropsInRgbOrder) {
  test::TempDir dir;
  write_png(dir.file("cats/1.png"), 40, 20, kBlue);
  write_png(dir.file("dogs/1.png"), 16, 32, kRed);
  write_png(dir.file("dogs/2.png"), 16, 16, kGreen);
  auto dataset = make_dataset(folder_options(dir.path().string(), 16));
  const DatasetInfo& info = dataset->info();
  EXPECT_EQ(info.size, 3);
  EXPECT_EQ(info.channels, 3);
  EXPECT_EQ(info.height, 16);
  EXPECT_EQ(info.width, 16);
  EXPECT_EQ(info.class_names, (std::vector<std::string>{"cats", "dogs"}));
  const Example blue = dataset->get(0);
  EXPECT_EQ(blue.label, 0);
  EXPECT_EQ(blue.image.sizes(), (std::vector<int64_t>{3, 16, 16}));
  EXPECT_FLOAT_EQ(blue.image[2].min().item<float>(), 1.0f);   // B channel last in RGB order
  EXPECT_FLOAT_EQ(blue.image[0].max().item<float>(), -1.0f);
  const Example red = dataset->get(1);
  EXPECT_EQ(red.label, 1);
  EXPECT_FLOAT_EQ(red.image[0].min().item<float>(), 1.0f);
}

TEST(ImageFolder, BmpChannelOrderIsRgb) {
  test::TempDir dir;
  write_bmp(dir.file("c/orange.bmp"), 5, 3, 255, 128, 0);
  auto dataset = make_dataset(folder_options(dir.path().string()));
  const Example e = dataset->get(0);
  ASSERT_EQ(e.image.sizes(), (std::vector<int64_t>{3, 3, 5}));
  EXPECT_FLOAT_EQ(e.image[0][1][2].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(e.image[1][1][2].item<float>(), 128 / 127.5f - 1.0f);
  EXPECT_FLOAT_EQ(e.image[2][1][2].item<float>(), -1.0f);
  // read_image decodes the same file to the same values.
  EXPECT_TRUE(torch::equal(read_image(dir.file("c/orange.bmp"), 3), e.image));
}

TEST(ImageFolder, GreyscaleAndSingleClassFolder) {
  test::TempDir dir;
  write_png(dir.file("flat/a.png"), 8, 8, kWhite);
  write_png(dir.file("flat/b.png"), 8, 8, kBlack);
  auto dataset = make_dataset(folder_options(dir.file("flat"), 0, 1));
  EXPECT_EQ(dataset->info().channels, 1);
  EXPECT_EQ(dataset->info().class_names, (std::vector<std::string>{"flat"}));
  EXPECT_FLOAT_EQ(dataset->get(0).image.min().item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(dataset->get(1).image.max().item<float>(), -1.0f);
}

TEST(ImageFolder, CorruptImageNamedOrSkipped) {
  test::TempDir dir;
  write_png(dir.file("c/good.png"), 8, 8, kRed);
  test::write_file(dir.file("c/broken.png"), "not a png at all");
  DataOptions options = folder_options(dir.path().string());
  const std::string m = test::error_message<DataError>([&] { make_dataset(options); });
  EXPECT_CONTAINS(m, "broken.png");
  EXPECT_CONTAINS(m, "skip_corrupt");
  options.skip_corrupt = true;
  auto dataset = make_dataset(options);
  EXPECT_EQ(dataset->info().size, 1);
}

TEST(ImageFolder, SmallImagesNeedAllowUpscale) {
  test::TempDir dir;
  write_png(dir.file("c/big.png"), 40, 40, kBlack);
  write_png(dir.file("c/small.png"), 24, 20, kBlack);
  DataOptions options = folder_options(dir.path().string(), 32);
  const std::string m = test::error_message<DataError>([&] { make_dataset(options); });
  EXPECT_CONTAINS(m, "small.png");
  EXPECT_CONTAINS(m, "24x20");
  EXPECT_CONTAINS(m, "allow_upscale");
  options.allow_upscale = true;
  EXPECT_EQ(make_dataset(options)->get(1).image.sizes(), (std::vector<int64_t>{3, 32, 32}));
}

TEST(ImageFolder, NativeSizeMustAgree) {
  test::TempDir dir;
  write_png(dir.file("c/a.png"), 8, 8, kBlack);
  write_png(dir.file("c/b.png"), 9, 8, kBlack);
  const std::string m = test::error_message<DataError>([&] { make_dataset(folder_options(dir.path().string())); });
  EXPECT_CONTAINS(m, "b.png");
  EXPECT_CONTAINS(m, "data.resolution");
}

#else

TEST(ImageFolder, WithoutOpenCvSaysSo) {
  test::TempDir dir;
  test::write_file(dir.file("c/a.png"), "x");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { make_dataset(folder_options(dir.path().string())); }), "no OpenCV");
}

#endif
