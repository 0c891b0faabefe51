// Image files: PNG and PGM/PPM round trips, conversions, grids, atomic writes and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "diffuse/core/error.h"
#include "diffuse/io/image_io.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

// A [C, H, W] image whose uint8 value at each pixel is known.
torch::Tensor known_pixels(int64_t channels, int64_t height, int64_t width) {
  return torch::arange(channels * height * width).remainder(256).to(torch::kUInt8).view({channels, height, width});
}

torch::Tensor to_unit(const torch::Tensor& pixels) { return pixels.to(torch::kFloat32) / 127.5 - 1; }

torch::Tensor to_bytes(const torch::Tensor& image) {
  return torch::round((image + 1) * 127.5).to(torch::kUInt8);
}


}  // namespace

TEST(ImageIo, NetpbmRoundTripIsExact) {
  test::TempDir dir;
  for (int64_t channels : {1, 3}) {
    const auto pixels = known_pixels(channels, 9, 11);
    const std::string path = dir.file(channels == 1 ? "a.pgm" : "a.ppm");
    write_image(path, to_unit(pixels));
    const auto back = read_image(path, 0);
    ASSERT_EQ(back.sizes(), pixels.sizes());
    EXPECT_TRUE(torch::equal(to_bytes(back), pixels));
  }
}

TEST(ImageIo, PgmHeaderIsStandard) {
  test::TempDir dir;
  write_image(dir.file("g.pgm"), torch::full({1, 2, 3}, 1.0f));
  EXPECT_EQ(test::read_file(dir.file("g.pgm")), std::string("P5\n3 2\n255\n") + std::string(6, '\xff'));
}

TEST(ImageIo, ClampsAndRounds) {
  test::TempDir dir;
  const auto image = torch::tensor({-3.0f, 3.0f, 0.0f, 1.0f / 127.5f - 1.0f}).view({1, 1, 4});
  write_image(dir.file("c.pgm"), image);
  EXPECT_TRUE(torch::equal(to_bytes(read_image(dir.file("c.pgm"), 0)).flatten(),
                           torch::tensor({0, 255, 128, 1}, torch::kUInt8)));
}

#if DIFFUSE_WITH_OPENCV
TEST(ImageIo, PngRoundTripIsExact) {
  test::TempDir dir;
  for (int64_t channels : {1, 3}) {
    const auto pixels = known_pixels(channels, 10, 7);
    const std::string path = dir.file("p" + std::to_string(channels) + ".png");
    write_image(path, to_unit(pixels));
    const auto back = read_image(path, 0);
    ASSERT_EQ(back.sizes(), pixels.sizes());
    EXPECT_TRUE(torch::equal(to_bytes(back), pixels));
  }
  EXPECT_EQ(image_extension(1), ".png");
}

TEST(ImageIo, PngIsRgbOrderAndConvertsChannels) {
  test::TempDir dir;
  auto red = torch::full({3, 2, 2}, -1.0f);
  red[0].fill_(1.0f);
  write_image(dir.file("red.png"), red);
  EXPECT_TRUE(torch::equal(read_image(dir.file("red.png"), 3), red));
  const auto grey = read_image(dir.file("red.png"), 1);
  EXPECT_EQ(grey.size(0), 1);
  EXPECT_NEAR(grey[0][0][0].item<float>(), std::round(0.299 * 255) / 127.5 - 1, 1.0 / 127.5);
}
#else
TEST(ImageIo, WithoutOpenCvExtensionsAreNetpbm) {
  EXPECT_EQ(image_extension(1), ".pgm");
  EXPECT_EQ(image_extension(3), ".ppm");
}
#endif

TEST(ImageIo, GrayToRgbOnRead) {
  test::TempDir dir;
  write_image(dir.file("g.pgm"), to_unit(known_pixels(1, 3, 3)));
  const auto rgb = read_image(dir.file("g.pgm"), 3);
  ASSERT_EQ(rgb.size(0), 3);
  EXPECT_TRUE(torch::equal(rgb[0], rgb[2]));
}

TEST(ImageIo, GridLayout) {
  const auto images = torch::zeros({10, 3, 5, 4});
  const auto grid = make_image_grid(images, 4, 2);
  // 3 rows × 4 columns: H = 3·(5+2)+2 = 23, W = 4·(4+2)+2 = 26.
  EXPECT_EQ(grid.sizes(), (std::vector<int64_t>{3, 23, 26}));
  EXPECT_FLOAT_EQ(grid[0][0][0].item<float>(), -1.0f);      // padding is black
  EXPECT_FLOAT_EQ(grid[0][2][2].item<float>(), 0.0f);       // first tile
  EXPECT_FLOAT_EQ(grid[0][22][25].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(grid[0][16][20].item<float>(), -1.0f);    // an empty slot in the last row
  EXPECT_EQ(make_image_grid(torch::zeros({2, 1, 5, 5}), 8, 0).sizes(), (std::vector<int64_t>{1, 5, 10}));
}

TEST(ImageIo, GridFileWrittenAtomically) {
  test::TempDir dir;
  const std::string path = dir.file("out/grid" + image_extension(3));
  write_image_grid(path, torch::rand({6, 3, 4, 4}) * 2 - 1, 3);
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(read_image(path, 0).sizes(), (std::vector<int64_t>{3, 2 * 6 + 2, 3 * 6 + 2}));
}

TEST(ImageIo, ErrorsNameTheFile) {
  test::TempDir dir;
  std::string m = test::error_message<DataError>([&] { read_image(dir.file("none.png"), 0); });
  EXPECT_NE(m.find("none.png"), std::string::npos) << m;
  test::write_file(dir.file("bad.pgm"), "P2\n1 1\n255\n0\n");
  m = test::error_message<DataError>([&] { read_image(dir.file("bad.pgm"), 0); });
  EXPECT_NE(m.find("bad.pgm"), std::string::npos) << m;
  EXPECT_NE(m.find("found 'P2'"), std::string::npos) << m;
  test::write_file(dir.file("short.ppm"), "P6\n4 4\n255\nabc");
  m = test::error_message<DataError>([&] { read_image(dir.file("short.ppm"), 0); });
  EXPECT_NE(m.find("short.ppm: truncated"), std::string::npos) << m;
  m = test::error_message<DataError>([&] { write_image(dir.file("x.pgm"), torch::zeros({3, 2, 2})); });
  EXPECT_NE(m.find("x.pgm"), std::string::npos) << m;
  m = test::error_message<DataError>([&] { write_image(dir.file("four.pgm"), torch::zeros({4, 2, 2})); });
  EXPECT_NE(m.find("four.pgm"), std::string::npos) << m;
  EXPECT_NE(m.find("[4, 2, 2]"), std::string::npos) << m;
}
