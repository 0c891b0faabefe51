#include "diffuse/io/image_io.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "diffuse/core/atomic_file.h"
#include "diffuse/core/error.h"
#include "diffuse/core/file_io.h"
#include "diffuse/core/shape_text.h"

#if DIFFUSE_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace diffuse {

namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return ext;
}

bool is_netpbm(const std::string& ext) { return ext == ".pgm" || ext == ".ppm"; }

void check_image_size(const std::string& path, int64_t width, int64_t height) {
  constexpr int64_t kMaxSide = int64_t{1} << 14;
  if (width < 1 || height < 1 || width > kMaxSide || height > kMaxSide || width * height > kMaxImagePixels)
    throw DataError(path + ": the image header claims " + std::to_string(width) + "x" + std::to_string(height) +
                    " pixels; diffuse reads images of 1x1 up to " + std::to_string(kMaxSide) + "x" +
                    std::to_string(kMaxSide));
}

uint32_t big_endian_u32(const std::string& bytes, size_t pos) {
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[pos + i]);
  return value;
}

// Walks the chunks of a PNG (length, type, data, CRC-32 of type and data) up to IEND, so that
// truncated and damaged files are refused here instead of by libpng, which prints to stderr.
void check_png(const std::string& path, const std::string& bytes) {
  constexpr size_t kSignature = 8;
  size_t pos = kSignature;
  bool header_seen = false;
  while (true) {
    if (pos + 12 > bytes.size())
      throw DataError(path + ": truncated PNG: the file ends at byte " + std::to_string(bytes.size()) +
                      " before its IEND chunk");
    const uint32_t length = big_endian_u32(bytes, pos);
    const std::string type = bytes.substr(pos + 4, 4);
    if (length > (uint32_t{1} << 31) || pos + 12 + length > bytes.size())
      throw DataError(path + ": truncated PNG: chunk '" + type + "' at byte " + std::to_string(pos) +
                      " needs " + std::to_string(length) + " bytes that the file does not hold");
    const auto* data = reinterpret_cast<const Bytef*>(bytes.data() + pos + 4);
    const auto crc = static_cast<uint32_t>(crc32(crc32(0L, Z_NULL, 0), data, length + 4));
    if (crc != big_endian_u32(bytes, pos + 8 + length))
      throw DataError(path + ": corrupt PNG: CRC mismatch in chunk '" + type + "' at byte " + std::to_string(pos));
    if (!header_seen) {
      if (type != "IHDR" || length != 13) throw DataError(path + ": corrupt PNG: the first chunk is not IHDR");
      check_image_size(path, big_endian_u32(bytes, pos + 8), big_endian_u32(bytes, pos + 12));
      header_seen = true;
    }
    if (type == "IEND") return;
    pos += 12 + length;
  }
}

void check_image_shape(const std::string& path, const torch::Tensor& image) {
  if (image.dim() != 3 || (image.size(0) != 1 && image.size(0) != 3))
    throw DataError(path + ": can only write images [C, H, W] with C = 1 or 3, found shape " +
                    shape_text(image.sizes()));
}

// Binary Netpbm (P5 grey / P6 RGB, maxval 255): a text header then the raw bytes.
std::string encode_netpbm(const std::string& path, const torch::Tensor& hwc) {
  const int64_t channels = hwc.size(2);
  const std::string ext = lower_extension(path);
  if ((ext == ".pgm") != (channels == 1))
    throw DataError(path + ": " + ext + " holds " + (ext == ".pgm" ? "1 channel" : "3 channels") +
                    " but the image has " + std::to_string(channels) +
                    "; use .pgm for 1 channel, .ppm for 3");
  std::string bytes = (channels == 1 ? "P5\n" : "P6\n") + std::to_string(hwc.size(1)) + " " +
                      std::to_string(hwc.size(0)) + "\n255\n";
  const size_t header = bytes.size();
  bytes.resize(header + static_cast<size_t>(hwc.numel()));
  std::copy_n(hwc.data_ptr<uint8_t>(), hwc.numel(), reinterpret_cast<uint8_t*>(&bytes[header]));
  return bytes;
}

// Reads the next header token of a Netpbm file, skipping white space and # comments.
std::string netpbm_token(const std::string& path, const std::string& bytes, size_t& pos) {
  while (pos < bytes.size()) {
    if (bytes[pos] == '#') {
      while (pos < bytes.size() && bytes[pos] != '\n') ++pos;
    } else if (std::isspace(static_cast<unsigned char>(bytes[pos]))) {
      ++pos;
    } else {
      break;
    }
  }
  const size_t start = pos;
  while (pos < bytes.size() && !std::isspace(static_cast<unsigned char>(bytes[pos]))) ++pos;
  if (start == pos) throw DataError(path + ": truncated PGM/PPM header");
  return bytes.substr(start, pos - start);
}

int64_t netpbm_number(const std::string& path, const std::string& bytes, size_t& pos,
                      const char* what) {
  const std::string token = netpbm_token(path, bytes, pos);
  char* end = nullptr;
  const long long value = std::strtoll(token.c_str(), &end, 10);
  if (*end != '\0' || value <= 0)
    throw DataError(path + ": bad PGM/PPM " + std::string(what) + " '" + token + "'");
  return value;
}

// [H, W, C] uint8 from a P5 / P6 file.
torch::Tensor decode_netpbm(const std::string& path) {
  const std::string bytes = read_file_bytes(path);
  size_t pos = 0;
  const std::string magic = netpbm_token(path, bytes, pos);
  if (magic != "P5" && magic != "P6")
    throw DataError(path + ": not a binary PGM/PPM file: magic expected P5 or P6, found '" +
                    magic.substr(0, 8) + "'");
  const int64_t width = netpbm_number(path, bytes, pos, "width");
  const int64_t height = netpbm_number(path, bytes, pos, "height");
  check_image_size(path, width, height);
  const int64_t maxval = netpbm_number(path, bytes, pos, "maxval");
  if (maxval != 255)
    throw DataError(path + ": PGM/PPM maxval expected 255, found " + std::to_string(maxval));
  ++pos;  // the single white-space byte that ends the header
  const int64_t channels = magic == "P5" ? 1 : 3;
  const int64_t need = width * height * channels;
  if (static_cast<int64_t>(bytes.size()) - static_cast<int64_t>(pos) < need)
    throw DataError(path + ": truncated PGM/PPM: " + std::to_string(need) + " pixel bytes expected, " +
                    std::to_string(static_cast<int64_t>(bytes.size()) - static_cast<int64_t>(pos)) +
                    " found");
  torch::Tensor hwc = torch::empty({height, width, channels}, torch::kUInt8);
  std::copy_n(reinterpret_cast<const uint8_t*>(bytes.data()) + pos, need, hwc.data_ptr<uint8_t>());
  return hwc;
}

void write_hwc(const std::string& path, const torch::Tensor& hwc) {
  const std::string ext = lower_extension(path);
  if (is_netpbm(ext)) {
    write_text_file_atomic(path, encode_netpbm(path, hwc));
    return;
  }
#if DIFFUSE_WITH_OPENCV
  const auto height = static_cast<int>(hwc.size(0)), width = static_cast<int>(hwc.size(1));
  const auto channels = static_cast<int>(hwc.size(2));
  cv::Mat image(height, width, CV_8UC(channels), hwc.data_ptr<uint8_t>());
  cv::Mat bgr;
  if (channels == 3) {
    cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
  } else {
    bgr = image;
  }
  std::vector<uint8_t> encoded;
  bool ok = false;
  try {
    ok = cv::imencode(ext, bgr, encoded);
  } catch (const cv::Exception& e) {
    throw DataError(path + ": cannot encode as '" + ext + "': " + e.what());
  }
  if (!ok) throw DataError(path + ": cannot encode as '" + ext + "'");
  write_text_file_atomic(path, std::string(encoded.begin(), encoded.end()));
#else
  throw DataError(path + ": this build of diffuse has no OpenCV and writes only .pgm (1 channel) "
                  "and .ppm (3 channels) images");
#endif
}

}  // namespace

torch::Tensor to_uint8_hwc(const torch::Tensor& image) {
  // round((x + 1) · 127.5), the inverse of the loaders' x / 127.5 - 1.
  return image.detach()
      .to(torch::kCPU, torch::kFloat32)
      .clamp(-1.0, 1.0)
      .add(1.0)
      .mul(127.5)
      .round()
      .to(torch::kUInt8)
      .permute({1, 2, 0})
      .contiguous();
}

torch::Tensor make_image_grid(const torch::Tensor& images, int64_t cols, int64_t padding) {
  if (images.dim() != 4 || (images.size(1) != 1 && images.size(1) != 3) || images.size(0) == 0)
    throw DataError("image grid: expected images [B, C, H, W] with B >= 1 and C = 1 or 3, found " +
                    shape_text(images.sizes()));
  if (cols < 1) throw DataError("image grid: cols must be >= 1, found " + std::to_string(cols));
  if (padding < 0) throw DataError("image grid: padding must be >= 0");
  const int64_t count = images.size(0), channels = images.size(1);
  const int64_t height = images.size(2), width = images.size(3);
  const int64_t columns = std::min(cols, count);
  const int64_t rows = (count + columns - 1) / columns;
  torch::Tensor grid = torch::full({channels, rows * (height + padding) + padding,
                                    columns * (width + padding) + padding},
                                   -1.0f, torch::kFloat32);
  const torch::Tensor source = images.detach().to(torch::kCPU, torch::kFloat32);
  for (int64_t k = 0; k < count; ++k) {
    const int64_t top = padding + (k / columns) * (height + padding);
    const int64_t left = padding + (k % columns) * (width + padding);
    grid.narrow(1, top, height).narrow(2, left, width).copy_(source[k]);
  }
  return grid;
}

void write_image_grid(const std::string& path, const torch::Tensor& images, int64_t cols,
                      int64_t padding) {
  try {
    write_image(path, make_image_grid(images, cols, padding));
  } catch (const DataError& e) {
    const std::string message = e.what();
    if (message.rfind(path, 0) == 0) throw;
    throw DataError(path + ": " + message);
  }
}

void write_image(const std::string& path, const torch::Tensor& image) {
  check_image_shape(path, image);
  write_hwc(path, to_uint8_hwc(image));
}

torch::Tensor read_image(const std::string& path, int64_t channels) {
  if (channels != 0 && channels != 1 && channels != 3)
    throw DataError(path + ": can read images as 0 (native), 1 or 3 channels, asked for " +
                    std::to_string(channels));
  if (!std::filesystem::is_regular_file(path)) throw DataError(path + ": image file does not exist");
  torch::Tensor hwc;
  if (is_netpbm(lower_extension(path))) {
    hwc = decode_netpbm(path);
  } else {
#if DIFFUSE_WITH_OPENCV
    const int flags = channels == 1 ? cv::IMREAD_GRAYSCALE
                    : channels == 3 ? cv::IMREAD_COLOR
                                    : cv::IMREAD_ANYCOLOR;
    const std::string bytes = read_checked_image_bytes(path);
    cv::Mat image;
    try {
      image = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data())), flags);
    } catch (const cv::Exception& e) {
      throw DataError(path + ": cannot decode the image: " + e.err);
    }
    if (image.empty()) throw DataError(path + ": cannot decode the image (corrupt or not an image)");
    if (image.channels() == 4) cv::cvtColor(image, image, cv::COLOR_BGRA2BGR);
    if (image.channels() == 3) cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
    if (!image.isContinuous()) image = image.clone();
    hwc = torch::from_blob(image.data, {image.rows, image.cols, image.channels()}, torch::kUInt8)
              .clone();
#else
    throw DataError(path + ": this build of diffuse has no OpenCV and reads only .pgm and .ppm "
                    "images");
#endif
  }
  torch::Tensor chw = hwc.permute({2, 0, 1}).to(torch::kFloat32);
  if (channels != 0 && chw.size(0) != channels) {
    if (chw.size(0) == 1) {
      chw = chw.expand({3, chw.size(1), chw.size(2)});
    } else {
      chw = rgb_to_grey(chw);
    }
  }
  return chw.div(127.5).sub(1.0).contiguous();
}

torch::Tensor rgb_to_grey(const torch::Tensor& chw) {
  return (0.299f * chw[0] + 0.587f * chw[1] + 0.114f * chw[2]).unsqueeze(0);
}

std::string read_checked_image_bytes(const std::string& path) {
  std::string bytes = read_file_bytes(path);
  static const std::string kPngSignature("\x89PNG\r\n\x1a\n", 8);
  if (bytes.compare(0, kPngSignature.size(), kPngSignature) == 0) check_png(path, bytes);
  return bytes;
}

std::string image_extension(int64_t channels) {
#if DIFFUSE_WITH_OPENCV
  (void)channels;
  return ".png";
#else
  return channels == 1 ? ".pgm" : ".ppm";
#endif
}

}  // namespace diffuse
