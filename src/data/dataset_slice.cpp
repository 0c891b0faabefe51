#include "diffuse/data/dataset_slice.h"

#include <cstdlib>
#include <regex>

#include "diffuse/core/error.h"

namespace diffuse {

namespace {

constexpr const char* kDefaultFashionDir = "/usr/share/datasets/fashion-mnist";

const char* kValidForms =
    "valid forms: fashion:<split>[<begin>:<end>], mnist:<split>[<begin>:<end>], "
    "cifar10:<split>[<begin>:<end>] with split train or test, e.g. fashion:test[0:64]";

const std::regex& slice_pattern() {
  static const std::regex pattern(R"(^([a-z0-9_]+):([a-z]+)\[(\d+):(\d+)\]$)");
  return pattern;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::string(value) : fallback;
}

}  // namespace

bool looks_like_dataset_slice(const std::string& text) {
  static const std::regex shape(R"(^[a-z0-9_]+:[a-z]+\[.*\]$)");
  return std::regex_match(text, shape);
}

DatasetSlice parse_dataset_slice(const std::string& text) {
  std::smatch match;
  if (!std::regex_match(text, match, slice_pattern()))
    throw DataError("'" + text + "' is not a dataset slice; " + kValidForms);
  const std::string name = match[1], split = match[2];
  DatasetSlice slice;
  if (split != "train" && split != "test")
    throw DataError("'" + text + "': unknown split '" + split + "'; " + kValidForms);
  slice.data.split = split;
  try {
    slice.begin = std::stoll(match[3]);
    slice.end = std::stoll(match[4]);
  } catch (const std::out_of_range&) {
    throw DataError("'" + text + "': index out of range");
  }
  if (slice.end <= slice.begin)
    throw DataError("'" + text + "': empty range [" + std::to_string(slice.begin) + ":" +
                    std::to_string(slice.end) + "), end must be greater than begin");
  if (name == "fashion") {
    slice.data.type = DatasetType::idx;
    slice.data.path = env_or("FASHION_MNIST_DIR", kDefaultFashionDir);
  } else if (name == "mnist") {
    slice.data.type = DatasetType::idx;
    slice.data.path = env_or("MNIST_DIR", "");
    if (slice.data.path.empty())
      throw DataError("'" + text + "': set MNIST_DIR to the folder holding the MNIST IDX files");
  } else if (name == "cifar10") {
    slice.data.type = DatasetType::cifar10;
    slice.data.path = env_or("CIFAR10_DIR", "");
    if (slice.data.path.empty())
      throw DataError("'" + text +
                      "': set CIFAR10_DIR to the folder holding the CIFAR-10 binary batches");
  } else {
    throw DataError("'" + text + "': unknown dataset '" + name + "'; " + kValidForms);
  }
  return slice;
}

Batch load_dataset_slice(const DatasetSlice& slice) {
  DataOptions options = slice.data;
  options.limit = slice.end;  // nothing past `end` needs decoding
  const auto dataset = make_dataset(options);
  const int64_t size = dataset->info().size;
  if (slice.end > size)
    throw DataError(options.path + ": slice [" + std::to_string(slice.begin) + ":" +
                    std::to_string(slice.end) + ") passes the end of the " + options.split +
                    " split, which holds " + std::to_string(size) + " items");
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  for (int64_t i = slice.begin; i < slice.end; ++i) {
    Example example = dataset->get(i);
    images.push_back(example.image);
    labels.push_back(example.label);
  }
  return {torch::stack(images), torch::tensor(labels, torch::kInt64)};
}

}  // namespace diffuse
