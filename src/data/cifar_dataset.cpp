#include "diffuse/data/cifar_dataset.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>

#include "diffuse/core/error.h"
#include "diffuse/core/file_io.h"
#include "diffuse/core/text.h"

namespace diffuse {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kCifarSide = 32;
constexpr int64_t kCifarPixels = 3 * kCifarSide * kCifarSide;

std::vector<std::string> read_class_names(const fs::path& meta) {
  std::ifstream in(meta);
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

// The binary batches of a split: the five training batches, or the test batch.
std::vector<std::string> batch_names(const std::string& split) {
  std::vector<std::string> names;
  if (split == "test") {
    names = {"test_batch.bin"};
  } else {
    for (int k = 1; k <= 5; ++k) names.push_back("data_batch_" + std::to_string(k) + ".bin");
  }
  return names;
}

void require_batches(const DataOptions& options, const fs::path& folder, const std::vector<std::string>& names) {
  std::vector<std::string> missing;
  for (const auto& name : names)
    if (!fs::exists(folder / name)) missing.push_back(name);
  if (!missing.empty()) {
    throw DataError(options.path + ": CIFAR-10 binary files missing: " + join(missing) +
                    " (expected data_batch_1..5.bin for train, test_batch.bin for test; "
                    "get cifar-10-binary.tar.gz)");
  }
}

// The bytes of each batch, checked to be whole records.
std::vector<std::string> read_batches(const fs::path& folder, const std::vector<std::string>& names) {
  std::vector<std::string> contents;
  for (const auto& name : names) {
    const std::string path = (folder / name).string();
    contents.push_back(read_file_bytes(path));
    const auto bytes = static_cast<int64_t>(contents.back().size());
    if (bytes == 0 || bytes % kCifarRecordBytes != 0)
      throw DataError(path + ": size " + std::to_string(bytes) +
                      " bytes is not a positive multiple of the " +
                      std::to_string(kCifarRecordBytes) + "-byte CIFAR-10 record");
  }
  return contents;
}

int64_t count_records(const std::vector<std::string>& contents) {
  int64_t total = 0;
  for (const auto& content : contents) total += static_cast<int64_t>(content.size()) / kCifarRecordBytes;
  return total;
}

// Copies the first rows of the batches into `pixels` [rows, 3, 32, 32] and `labels` [rows].
void decode_records(const fs::path& folder, const std::vector<std::string>& names,
                    const std::vector<std::string>& contents, torch::Tensor& pixels, torch::Tensor& labels) {
  const int64_t keep = labels.size(0);
  auto* pixel_out = pixels.data_ptr<uint8_t>();
  auto* label_out = labels.data_ptr<int64_t>();
  int64_t row = 0;
  for (size_t f = 0; f < contents.size() && row < keep; ++f) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(contents[f].data());
    const auto records = static_cast<int64_t>(contents[f].size()) / kCifarRecordBytes;
    for (int64_t r = 0; r < records && row < keep; ++r, ++row) {
      const uint8_t* record = bytes + r * kCifarRecordBytes;
      if (record[0] > 9)
        throw DataError((folder / names[f]).string() + ": record " + std::to_string(r) +
                        " has label " + std::to_string(record[0]) + ", expected 0..9");
      label_out[row] = record[0];
      std::copy_n(record + 1, kCifarPixels, pixel_out + row * kCifarPixels);
    }
  }
}

// batches.meta.txt's names where the folder has the file, else the standard ten.
std::vector<std::string> class_names_in(const fs::path& folder) {
  std::vector<std::string> class_names = cifar10_class_names();
  const fs::path meta = folder / "batches.meta.txt";
  if (fs::exists(meta)) {
    auto from_meta = read_class_names(meta);
    if (from_meta.size() != 10)
      throw DataError(meta.string() + ": expected 10 class names, found " +
                      std::to_string(from_meta.size()));
    class_names = std::move(from_meta);
  }
  return class_names;
}

}  // namespace

const std::vector<std::string>& cifar10_class_names() {
  static const std::vector<std::string> names{"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};
  return names;
}

std::shared_ptr<ImageTensorDataset> load_cifar10_dataset(const DataOptions& options) {
  const fs::path folder(options.path);
  if (!fs::is_directory(folder))
    throw DataError(options.path + ": CIFAR-10 folder does not exist (data.path)");
  const std::vector<std::string> names = batch_names(options.split);
  require_batches(options, folder, names);

  const std::vector<std::string> contents = read_batches(folder, names);
  const int64_t total = count_records(contents);
  const int64_t keep = options.limit > 0 ? std::min(options.limit, total) : total;

  torch::Tensor pixels = torch::empty({keep, 3, kCifarSide, kCifarSide}, torch::kUInt8);
  torch::Tensor labels = torch::empty({keep}, torch::kInt64);
  decode_records(folder, names, contents, pixels, labels);

  std::vector<std::string> class_names = class_names_in(folder);
  spdlog::debug("CIFAR-10 {}: {} images from {}", options.split, keep, options.path);
  ImageTransform transform{options.channels, options.resolution};
  return std::make_shared<ImageTensorDataset>(std::move(pixels), std::move(labels),
                                              std::move(class_names), transform);
}

}  // namespace diffuse
