#include "diffuse/data/idx_dataset.h"

#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>

#include "diffuse/core/error.h"
#include "diffuse/core/file_io.h"

namespace diffuse {

namespace {

namespace fs = std::filesystem;

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08X", value);
  return text;
}

uint32_t read_be32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Checks the header of an IDX file: magic, then `dims` big-endian sizes, then the payload.
std::vector<int64_t> read_idx_header(const std::string& path, const std::string& bytes,
                                     uint32_t magic, int dims) {
  const size_t header = 4 * (1 + static_cast<size_t>(dims));
  if (bytes.size() < 4)
    throw DataError(path + ": truncated IDX file: " + std::to_string(bytes.size()) +
                    " bytes, too short for the magic number");
  const uint32_t found = read_be32(bytes, 0);
  if (found != magic)
    throw DataError(path + ": not an IDX " + (dims == 3 ? "image" : "label") +
                    " file: magic number expected " + hex32(magic) + ", found " + hex32(found));
  if (bytes.size() < header)
    throw DataError(path + ": truncated IDX file: header needs " + std::to_string(header) +
                    " bytes, file has " + std::to_string(bytes.size()));
  std::vector<int64_t> sizes;
  int64_t payload = 1;
  for (int d = 0; d < dims; ++d) {
    sizes.push_back(read_be32(bytes, 4 + 4 * static_cast<size_t>(d)));
    payload *= sizes.back();
  }
  const auto expected = static_cast<int64_t>(header) + payload;
  if (static_cast<int64_t>(bytes.size()) < expected)
    throw DataError(path + ": truncated IDX file: expected " + std::to_string(expected) +
                    " bytes for the sizes in its header, found " + std::to_string(bytes.size()));
  return sizes;
}

// The path of `<folder>/<stem>.gz` or `<folder>/<stem>`, whichever exists.
std::string find_idx_file(const std::string& folder, const std::string& stem) {
  const fs::path base = fs::path(folder) / stem;
  const std::string gz = base.string() + ".gz";
  if (fs::exists(gz)) return gz;
  if (fs::exists(base)) return base.string();
  throw DataError(folder + ": IDX file missing: looked for " + stem + ".gz and " + stem +
                  " (split train uses train-*, test uses t10k-*)");
}

bool looks_like_fashion(const std::string& folder) {
  std::string lower = folder;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return lower.find("fashion") != std::string::npos;
}

// The whole (decompressed) content of `path`: gzip when it ends in .gz, raw otherwise.
std::string read_maybe_gzip_file(const std::string& path) {
  if (!ends_with(path, ".gz")) return read_file_bytes(path);
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw DataError(path + ": cannot open for reading");
  std::string content;
  std::vector<char> chunk(1 << 20);
  while (true) {
    const int got = gzread(file, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (got < 0) {
      int code = 0;
      const std::string reason = gzerror(file, &code);
      gzclose(file);
      throw DataError(path + ": corrupt gzip data: " + reason);
    }
    if (got == 0) break;
    content.append(chunk.data(), static_cast<size_t>(got));
  }
  // gzread stops quietly at a cut-off stream; gzclose reports it.
  const int closed = gzclose(file);
  if (closed != Z_OK)
    throw DataError(path + ": truncated or corrupt gzip stream (zlib code " +
                    std::to_string(closed) + ")");
  return content;
}

}  // namespace

torch::Tensor read_idx_images(const std::string& path) {
  const std::string bytes = read_maybe_gzip_file(path);
  const auto sizes = read_idx_header(path, bytes, kIdxImagesMagic, 3);
  torch::Tensor images = torch::empty({sizes[0], 1, sizes[1], sizes[2]}, torch::kUInt8);
  std::copy_n(bytes.data() + 16, images.numel(), reinterpret_cast<char*>(images.data_ptr<uint8_t>()));
  return images;
}

torch::Tensor read_idx_labels(const std::string& path) {
  const std::string bytes = read_maybe_gzip_file(path);
  const auto sizes = read_idx_header(path, bytes, kIdxLabelsMagic, 1);
  torch::Tensor labels = torch::empty({sizes[0]}, torch::kInt64);
  auto* out = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < sizes[0]; ++i) out[i] = static_cast<unsigned char>(bytes[8 + i]);
  return labels;
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names{"T-shirt/top", "Trouser", "Pullover", "Dress",
                                              "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                              "Bag",         "Ankle boot"};
  return names;
}

std::shared_ptr<ImageTensorDataset> load_idx_dataset(const DataOptions& options) {
  if (!fs::is_directory(options.path))
    throw DataError(options.path + ": IDX dataset folder does not exist (data.path)");
  const std::string prefix = options.split == "test" ? "t10k" : "train";
  const std::string images_path = find_idx_file(options.path, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_idx_file(options.path, prefix + "-labels-idx1-ubyte");
  torch::Tensor images = read_idx_images(images_path);
  torch::Tensor labels = read_idx_labels(labels_path);
  if (images.size(0) != labels.size(0))
    throw DataError(images_path + " holds " + std::to_string(images.size(0)) + " images but " +
                    labels_path + " holds " + std::to_string(labels.size(0)) + " labels");
  const int64_t max_label = labels.numel() > 0 ? labels.max().item<int64_t>() : 0;
  if (max_label > 9)
    throw DataError(labels_path + ": label " + std::to_string(max_label) +
                    " found, expected labels 0..9");
  std::vector<std::string> class_names;
  if (looks_like_fashion(options.path)) {
    class_names = fashion_mnist_class_names();
  } else {
    for (int k = 0; k < 10; ++k) class_names.push_back(std::to_string(k));
  }
  spdlog::debug("IDX {}: {} images {}x{} from {}", options.split, images.size(0), images.size(2),
                images.size(3), images_path);
  ImageTransform transform{options.channels, options.resolution};
  return std::make_shared<ImageTensorDataset>(std::move(images), std::move(labels),
                                              std::move(class_names), transform, options.limit);
}

}  // namespace diffuse
