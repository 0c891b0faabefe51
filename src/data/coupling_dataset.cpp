#include "diffuse/data/coupling_dataset.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "diffuse/core/error.h"

namespace diffuse {
namespace fs = std::filesystem;

CouplingDataset::CouplingDataset(const DataOptions& options) {
  const fs::path dir = options.path;
  const fs::path manifest_path = dir / "couplings.json";
  if (!fs::is_regular_file(manifest_path))
    throw DataError(dir.string() + ": no couplings.json; data.type couplings reads a folder written by diffuse reflow");
  std::ifstream in(manifest_path);
  const auto manifest = nlohmann::json::parse(in, nullptr, false);
  if (manifest.is_discarded() || !manifest.contains("channels") || !manifest.contains("image_size") ||
      !manifest.contains("class_names"))
    throw DataError(manifest_path.string() + ": not a couplings manifest (expected channels, image_size, class_names)");
  info_.channels = manifest["channels"].get<int64_t>();
  info_.height = info_.width = manifest["image_size"].get<int64_t>();
  info_.class_names = manifest["class_names"].get<std::vector<std::string>>();

  std::vector<fs::path> chunks;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const auto name = entry.path().filename().string();
    if (name.rfind("pairs_", 0) == 0 && entry.path().extension() == ".pt") chunks.push_back(entry.path());
  }
  std::sort(chunks.begin(), chunks.end());
  if (chunks.empty()) throw DataError(dir.string() + ": no pairs_*.pt files (run diffuse reflow to draw them)");
  std::vector<torch::Tensor> noise, samples, labels;
  const std::vector<int64_t> item{info_.channels, info_.height, info_.width};
  for (const auto& path : chunks) {
    std::vector<torch::Tensor> t;
    try {
      torch::load(t, path.string());
    } catch (const c10::Error& e) {
      throw DataError(path.string() + ": unreadable couplings file: " + e.what_without_backtrace());
    }
    if (t.size() != 3 || t[0].dim() != 4 || t[0].sizes().slice(1) != torch::IntArrayRef(item) ||
        t[1].sizes() != t[0].sizes() || t[2].dim() != 1 || t[2].size(0) != t[0].size(0))
      throw DataError(path.string() + ": expected {noise, samples} of [n, " + std::to_string(item[0]) + ", " +
                      std::to_string(item[1]) + ", " + std::to_string(item[2]) + "] and labels [n]");
    noise.push_back(t[0].to(torch::kFloat32));
    samples.push_back(t[1].to(torch::kFloat32));
    labels.push_back(t[2].to(torch::kInt64));
  }
  noise_ = torch::cat(noise);
  samples_ = torch::cat(samples);
  labels_ = torch::cat(labels);
  int64_t count = noise_.size(0);
  if (options.limit > 0 && options.limit < count) count = options.limit;
  noise_ = noise_.narrow(0, 0, count).contiguous();
  samples_ = samples_.narrow(0, 0, count).contiguous();
  labels_ = labels_.narrow(0, 0, count).contiguous();
  info_.size = count;
  const int64_t classes = static_cast<int64_t>(info_.class_names.size());
  if (count > 0 && (labels_.min().item<int64_t>() < 0 || (classes > 0 && labels_.max().item<int64_t>() >= classes)))
    throw DataError(dir.string() + ": labels outside the manifest's " + std::to_string(classes) + " classes");
}

Example CouplingDataset::get(int64_t index) const {
  if (index < 0 || index >= info_.size)
    throw DataError("coupling index " + std::to_string(index) + " out of range [0, " + std::to_string(info_.size) + ")");
  return {samples_[index].clone(), labels_[index].item<int64_t>(), noise_[index].clone()};
}

}  // namespace diffuse
