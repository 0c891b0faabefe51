#include "diffuse/eval/feature_stats.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <regex>
#include <sstream>

#include "diffuse/core/atomic_file.h"
#include "diffuse/core/error.h"
#include "diffuse/core/round_robin.h"
#include "diffuse/core/text.h"
#include "diffuse/data/dataset.h"
#include "diffuse/io/image_io.h"

namespace diffuse {
namespace fs = std::filesystem;
namespace {

constexpr const char* kStatsFormat = "diffuse-feature-stats-1";

// Images and labels of a source, read lazily in batches (datasets can be large).
struct ImageReader {
  int64_t count = 0;
  std::function<std::pair<torch::Tensor, std::vector<int64_t>>(int64_t begin, int64_t end)> read;
  bool labelled = false;
};

std::optional<DataOptions> dataset_spec(const std::string& spec) {
  const auto colon = spec.find(':');
  if (colon == std::string::npos) return std::nullopt;
  const std::string head = spec.substr(0, colon), rest = spec.substr(colon + 1);
  DataOptions o;
  o.num_workers = 0;
  if (head == "fashion") {
    if (rest != "train" && rest != "test")
      throw DataError("image source '" + spec + "': expected fashion:train or fashion:test");
    o.split = rest;
    return o;
  }
  const auto* type = find_by_name(kDatasetTypeNames, head);
  if (!type) return std::nullopt;
  if (type->value == DatasetType::latents || type->value == DatasetType::random)
    throw DataError("image source '" + spec + "': " + head + " datasets are not images");
  o.type = type->value;
  const auto split = rest.rfind(':');
  if (split != std::string::npos && (rest.substr(split + 1) == "train" || rest.substr(split + 1) == "test")) {
    o.split = rest.substr(split + 1);
    o.path = rest.substr(0, split);
  } else {
    o.path = rest;
  }
  return o;
}

ImageReader dataset_reader(const DataOptions& options) {
  std::shared_ptr<Dataset> dataset = make_dataset(options);
  ImageReader reader;
  reader.count = dataset->info().size;
  reader.labelled = !dataset->info().class_names.empty();
  reader.read = [dataset](int64_t begin, int64_t end) {
    std::vector<torch::Tensor> images;
    std::vector<int64_t> labels;
    for (int64_t i = begin; i < end; ++i) {
      Example e = dataset->get(i);
      images.push_back(e.image);
      labels.push_back(e.label);
    }
    return std::make_pair(torch::stack(images), labels);
  };
  return reader;
}

// sampling.yaml's labels beside a samples.pt, if any.
std::vector<int64_t> sampling_labels(const fs::path& folder, int64_t count, const std::string& source) {
  const fs::path record = folder / "sampling.yaml";
  if (!fs::exists(record)) return {};
  std::vector<int64_t> labels;
  try {
    const YAML::Node root = YAML::LoadFile(record.string());
    if (root["labels"]) labels = root["labels"].as<std::vector<int64_t>>();
  } catch (const YAML::Exception& e) {
    throw DataError(record.string() + ": cannot read the labels of " + source + ": " + e.what());
  }
  if (!labels.empty() && static_cast<int64_t>(labels.size()) != count)
    throw DataError(record.string() + " lists " + std::to_string(labels.size()) + " labels for the " +
                    std::to_string(count) + " images of " + source);
  return labels;
}

ImageReader in_memory_reader(torch::Tensor images, std::vector<int64_t> labels) {
  ImageReader reader;
  reader.count = images.size(0);
  reader.labelled = !labels.empty();
  reader.read = [images, labels](int64_t begin, int64_t end) {
    std::vector<int64_t> part;
    if (!labels.empty()) part.assign(labels.begin() + begin, labels.begin() + end);
    return std::make_pair(images.slice(0, begin, end), part);
  };
  return reader;
}

ImageReader tensor_file_reader(const std::string& path) {
  torch::Tensor images;
  try {
    torch::load(images, path);
  } catch (const c10::Error& e) {
    throw DataError(path + ": not a tensor file (expected images [N, C, H, W] saved with torch::save / "
                    "diffuse sample --format pt): " + e.what_without_backtrace());
  }
  if (images.dim() != 4 || !images.is_floating_point())
    throw DataError(path + ": expected float images [N, C, H, W], found a " + std::to_string(images.dim()) +
                    "-d tensor of " + std::string(images.dtype().name()));
  auto labels = sampling_labels(fs::path(path).parent_path(), images.size(0), path);
  return in_memory_reader(images.to(torch::kFloat32), std::move(labels));
}

ImageReader image_folder_reader(const std::string& folder) {
  static const std::vector<std::string> kExtensions{".png", ".pgm", ".ppm", ".jpg", ".jpeg", ".bmp"};
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (!entry.is_regular_file()) continue;
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (std::find(kExtensions.begin(), kExtensions.end(), ext) == kExtensions.end()) continue;
    if (entry.path().stem().string().rfind("grid", 0) == 0) continue;  // sample grids are not samples
    files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw DataError(folder + ": no image files (.png, .pgm, .ppm, .jpg) in this folder");
  // Labels from diffuse sample's names (seed12_class3.png): all or none.
  static const std::regex kClass("_class([0-9]+)$");
  std::vector<int64_t> labels;
  for (const auto& f : files) {
    std::smatch m;
    const std::string stem = f.stem().string();
    if (std::regex_search(stem, m, kClass)) labels.push_back(std::stoll(m[1].str()));
  }
  if (!labels.empty() && labels.size() != files.size())
    throw DataError(folder + ": " + std::to_string(labels.size()) + " of " + std::to_string(files.size()) +
                    " image names carry a _classK label; give all of them one or none");
  ImageReader reader;
  reader.count = static_cast<int64_t>(files.size());
  reader.labelled = !labels.empty();
  reader.read = [files, labels](int64_t begin, int64_t end) {
    std::vector<torch::Tensor> images;
    for (int64_t i = begin; i < end; ++i) images.push_back(read_image(files[static_cast<size_t>(i)].string(), 0));
    for (size_t i = 1; i < images.size(); ++i)
      if (images[i].sizes() != images[0].sizes())
        throw DataError(files[static_cast<size_t>(begin) + i].string() + ": size differs from " +
                        files[static_cast<size_t>(begin)].string() + "; every image of a set must have one size");
    std::vector<int64_t> part;
    if (!labels.empty()) part.assign(labels.begin() + begin, labels.begin() + end);
    return std::make_pair(torch::stack(images), part);
  };
  return reader;
}

ImageReader open_source(const std::string& spec) {
  if (const auto data = dataset_spec(spec)) return dataset_reader(*data);
  if (fs::is_directory(spec)) return image_folder_reader(spec);
  if (fs::is_regular_file(spec)) {
    if (is_feature_stats_file(spec))
      throw DataError(spec + " is a stats file: give it as the reference (--ref), not as images");
    return tensor_file_reader(spec);
  }
  throw DataError("image source '" + spec + "': no such folder or file, and not a dataset (expected fashion:train, "
                  "fashion:test, TYPE:PATH[:SPLIT] with TYPE idx, cifar10 or image_folder, a folder of images or a .pt tensor file)");
}

// This rank's rows, gathered from every rank and put back in the one-process order.
torch::Tensor gather_rows(const FeatureSharding& sharding, const RoundRobinBatches& layout,
                          const torch::Tensor& local) {
  return layout.reassemble(sharding.gather(layout.pad(local)));
}

FeatureSet run_network(FeatureNetwork& network, const ImageReader& reader, int64_t limit, int64_t batch_size,
                       const std::string& source, const FeatureProgress& progress, const FeatureSharding& sharding = {}) {
  const int64_t n = limit > 0 ? std::min(limit, reader.count) : reader.count;
  if (n < 2) throw DataError(source + ": need at least 2 images for feature statistics, found " + std::to_string(n));
  FeatureSet set;
  set.network = network.identity();
  set.source = source;
  const RoundRobinBatches layout{n, batch_size, sharding.ranks};
  std::vector<torch::Tensor> features, logits;
  std::vector<int64_t> labels;
  for (const auto [begin, end] : layout.batches_of(sharding.rank)) {
    auto [images, batch_labels] = reader.read(begin, end);
    FeatureBatch batch = network.extract(images);
    features.push_back(batch.features);
    if (batch.logits.defined()) logits.push_back(batch.logits);
    labels.insert(labels.end(), batch_labels.begin(), batch_labels.end());
    if (progress) progress(end, n);
  }
  if (sharding.ranks <= 1) {
    set.features = torch::cat(features);
    if (!logits.empty()) set.logits = torch::cat(logits);
    set.labels = std::move(labels);
  } else {
    // A rank without a batch of its own runs batch 0 for the shapes; its rows are padding.
    bool has_labels = !labels.empty();
    if (features.empty()) {
      auto [images, batch_labels] = reader.read(0, std::min(batch_size, n));
      FeatureBatch batch = network.extract(images);
      features.push_back(batch.features.narrow(0, 0, 0));
      if (batch.logits.defined()) logits.push_back(batch.logits.narrow(0, 0, 0));
      has_labels = !batch_labels.empty();
    }
    set.features = gather_rows(sharding, layout, torch::cat(features));
    if (!logits.empty()) set.logits = gather_rows(sharding, layout, torch::cat(logits));
    if (has_labels) {
      const auto mine = torch::tensor(labels, torch::kLong).view({-1, 1});
      const auto all = gather_rows(sharding, layout, mine).contiguous();
      set.labels.assign(all.data_ptr<int64_t>(), all.data_ptr<int64_t>() + n);
    }
  }
  set.moments = feature_moments(set.features);
  return set;
}

}  // namespace

FeatureSet extract_features(FeatureNetwork& network, const std::string& source, int64_t limit, int64_t batch_size,
                            const FeatureProgress& progress, const FeatureSharding& sharding) {
  return run_network(network, open_source(source), limit, batch_size, source, progress, sharding);
}

FeatureSet extract_features(FeatureNetwork& network, const DataOptions& data, const std::string& source,
                            int64_t batch_size, const FeatureProgress& progress) {
  DataOptions options = data;
  options.hflip = false;
  options.num_workers = 0;
  return run_network(network, dataset_reader(options), options.limit, batch_size, source, progress);
}

FeatureSet extract_features(FeatureNetwork& network, const torch::Tensor& images, std::vector<int64_t> labels,
                            const std::string& source, int64_t batch_size, const FeatureProgress& progress) {
  if (!labels.empty() && static_cast<int64_t>(labels.size()) != images.size(0))
    throw DataError(source + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(images.size(0)) +
                    " images");
  return run_network(network, in_memory_reader(images, std::move(labels)), 0, batch_size, source, progress);
}

void save_feature_stats(const std::string& path, const FeatureSet& set) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kStatsFormat)));
  archive.write("network", c10::IValue(set.network));
  archive.write("source", c10::IValue(set.source));
  archive.write("features", set.features.contiguous(), /*is_buffer=*/true);
  archive.write("labels", torch::tensor(set.labels, torch::kLong), /*is_buffer=*/true);
  archive.write("mean", set.moments.mean, /*is_buffer=*/true);
  archive.write("cov", set.moments.cov, /*is_buffer=*/true);
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_text_file_atomic(path, bytes.str());
}

bool is_feature_stats_file(const std::string& path) {
  std::error_code error;
  if (!fs::is_regular_file(path, error)) return false;
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    c10::IValue format;
    return archive.try_read("format", format) && format.isString() && format.toStringRef() == kStatsFormat;
  } catch (const c10::Error&) {
    return false;
  }
}

FeatureSet load_feature_stats(const std::string& path) {
  if (!fs::is_regular_file(path)) throw DataError(path + ": no such stats file");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw DataError(path + ": not a stats file (write one with diffuse eval --save-stats): " + e.what_without_backtrace());
  }
  const auto text = [&](const char* key) {
    c10::IValue v;
    if (!archive.try_read(key, v) || !v.isString())
      throw DataError(path + ": not a diffuse stats file (no '" + key + "' entry; write one with diffuse eval --save-stats)");
    return v.toStringRef();
  };
  const auto tensor = [&](const char* key) {
    torch::Tensor t;
    if (!archive.try_read(key, t, /*is_buffer=*/true))
      throw DataError(path + ": damaged stats file (no '" + key + "' tensor); compute it again with --save-stats");
    return t;
  };
  if (text("format") != kStatsFormat)
    throw DataError(path + ": stats format '" + text("format") + "', expected " + kStatsFormat);
  FeatureSet set;
  set.network = text("network");
  set.source = text("source");
  set.features = tensor("features");
  const auto labels = tensor("labels").to(torch::kLong).contiguous();
  set.labels.assign(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
  set.moments = {tensor("mean"), tensor("cov")};
  const int64_t d = set.features.dim() == 2 ? set.features.size(1) : -1;
  if (d < 1 || set.moments.mean.numel() != d || set.moments.cov.numel() != d * d ||
      (!set.labels.empty() && static_cast<int64_t>(set.labels.size()) != set.features.size(0)))
    throw DataError(path + ": damaged stats file (features, labels, mean and covariance do not agree in size)");
  return set;
}

void check_same_network(const FeatureSet& reference, const FeatureSet& samples) {
  if (reference.network != samples.network)
    throw DataError("the reference (" + reference.source + ") has features of network '" + reference.network +
                    "' but the samples (" + samples.source + ") of '" + samples.network +
                    "'; features of different networks cannot be compared: compute the reference with the same "
                    "--features");
}

}  // namespace diffuse
