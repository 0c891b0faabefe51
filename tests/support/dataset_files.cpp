#include "support/dataset_files.h"

#include <zlib.h>

#include <filesystem>
#include <stdexcept>

#include "support/test_paths.h"

namespace diffuse::test {

namespace {

void append_be32(std::string& bytes, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>((value >> shift) & 0xFF));
}

std::string raw_bytes(const torch::Tensor& t) {
  const torch::Tensor c = t.to(torch::kUInt8).contiguous();
  return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), static_cast<size_t>(c.numel()));
}

}  // namespace

std::string idx_images_bytes(const torch::Tensor& images) {
  std::string bytes;
  append_be32(bytes, 0x00000803);
  for (int64_t d = 0; d < 3; ++d) append_be32(bytes, static_cast<uint32_t>(images.size(d)));
  return bytes + raw_bytes(images);
}

std::string idx_labels_bytes(const torch::Tensor& labels) {
  std::string bytes;
  append_be32(bytes, 0x00000801);
  append_be32(bytes, static_cast<uint32_t>(labels.size(0)));
  return bytes + raw_bytes(labels);
}

void write_gzip_file(const std::string& path, const std::string& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  if (!file) throw std::runtime_error("cannot open " + path + " for gzip writing");
  const int written = gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size()));
  if (gzclose(file) != Z_OK || written != static_cast<int>(bytes.size()))
    throw std::runtime_error("gzip write failed: " + path);
}

void write_idx_split(const std::string& folder, const std::string& prefix,
                     const torch::Tensor& images, const torch::Tensor& labels, bool gzip) {
  const std::string images_path = folder + "/" + prefix + "-images-idx3-ubyte";
  const std::string labels_path = folder + "/" + prefix + "-labels-idx1-ubyte";
  std::filesystem::create_directories(folder);
  if (gzip) {
    write_gzip_file(images_path + ".gz", idx_images_bytes(images));
    write_gzip_file(labels_path + ".gz", idx_labels_bytes(labels));
  } else {
    write_file(images_path, idx_images_bytes(images));
    write_file(labels_path, idx_labels_bytes(labels));
  }
}

torch::Tensor pattern_images(int64_t count, int64_t height, int64_t width) {
  auto n = torch::arange(count).view({count, 1, 1});
  auto y = torch::arange(height).view({1, height, 1});
  auto x = torch::arange(width).view({1, 1, width});
  return (31 * n + 7 * y + 3 * x).remainder(256).to(torch::kUInt8);
}

torch::Tensor pattern_labels(int64_t count) { return torch::arange(count).remainder(10); }

std::string cifar_batch_bytes(const torch::Tensor& images, const torch::Tensor& labels) {
  std::string bytes;
  for (int64_t i = 0; i < images.size(0); ++i) {
    bytes.push_back(static_cast<char>(labels[i].item<int64_t>()));
    bytes += raw_bytes(images[i]);
  }
  return bytes;
}

}  // namespace diffuse::test
