#include "diffuse/data/latent_dataset.h"

#include <filesystem>
#include <tuple>
#include <utility>

#include "diffuse/core/error.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/io/npy.h"
#include "diffuse/io/safetensors.h"

namespace diffuse {

namespace {

// {latents, labels} from a safetensors file, a .npy pair (z.npy, z.labels.npy) or a torch::save
// tensor list.
std::pair<torch::Tensor, torch::Tensor> read_latents_file(const std::string& path) {
  if (is_safetensors_path(path)) {
    const SafetensorsContents file = read_safetensors(path);
    const auto latents = file.find("latents"), labels = file.find("labels");
    if (!latents.defined() || !labels.defined())
      throw DataError(path + ": a latents safetensors file holds the tensors 'latents' [N, C, H, W] and 'labels' [N] "
                      "(zeros for unlabelled data); found " + std::to_string(file.tensors.size()) + " tensor(s)" +
                      (file.tensors.empty() ? "" : ", the first '" + file.tensors.front().first + "'"));
    return {latents, labels};
  }
  if (std::filesystem::path(path).extension() == ".npy") {
    const std::string labels = path.substr(0, path.size() - 4) + ".labels.npy";
    if (!std::filesystem::is_regular_file(labels))
      throw DataError(path + ": the labels of .npy latents go in " + labels +
                      " (np.save of an integer array [N]; zeros for unlabelled data), which is not there");
    return {read_npy(path), read_npy(labels)};
  }
  std::vector<torch::Tensor> tensors;
  try {
    torch::load(tensors, path);
  } catch (const c10::Error& e) {
    throw DataError(path + ": not a latents file (expected a .safetensors file or torch::save of a tensor list "
                    "{latents [N,C,H,W] float, labels [N] int64}): " +
                    std::string(e.what_without_backtrace()));
  }
  if (tensors.size() != 2)
    throw DataError(path + ": expected 2 tensors {latents, labels}, found " + std::to_string(tensors.size()));
  return {tensors[0], tensors[1]};
}

}  // namespace

LatentDataset::LatentDataset(const DataOptions& options) {
  const std::string& path = options.path;
  if (!std::filesystem::is_regular_file(path))
    throw DataError(path + ": latents file does not exist (data.path must name a .safetensors file or the file "
                    "written by torch::save of {latents, labels})");
  std::tie(latents_, labels_) = read_latents_file(path);
  if (latents_.dim() != 4 || !latents_.is_floating_point())
    throw DataError(path + ": latents must be a float tensor [N, C, H, W], found " +
                    std::string(c10::toString(latents_.scalar_type())) + " " + shape_text(latents_.sizes()));
  if (labels_.dim() != 1 || labels_.size(0) != latents_.size(0) || labels_.is_floating_point())
    throw DataError(path + ": labels must be an integer tensor [" +
                    std::to_string(latents_.size(0)) + "], found " +
                    std::string(c10::toString(labels_.scalar_type())) + " " + shape_text(labels_.sizes()));
  if (options.channels != 0 && options.channels != latents_.size(1))
    throw DataError(path + ": data.channels is " + std::to_string(options.channels) +
                    " but the latents have " + std::to_string(latents_.size(1)) +
                    " channels (use 0 for latents)");
  if (options.resolution != 0 &&
      (options.resolution != latents_.size(2) || options.resolution != latents_.size(3)))
    throw DataError(path + ": data.resolution is " + std::to_string(options.resolution) +
                    " but the latents are " + std::to_string(latents_.size(2)) + "x" +
                    std::to_string(latents_.size(3)) + " (use 0 for latents)");
  int64_t count = latents_.size(0);
  if (options.limit > 0 && options.limit < count) count = options.limit;
  latents_ = latents_.narrow(0, 0, count).to(torch::kFloat32).contiguous();
  labels_ = labels_.narrow(0, 0, count).to(torch::kInt64).contiguous();
  if (count > 0 && labels_.min().item<int64_t>() < 0)
    throw DataError(path + ": labels must be >= 0, found " +
                    std::to_string(labels_.min().item<int64_t>()));
  info_.size = count;
  info_.channels = latents_.size(1);
  info_.height = latents_.size(2);
  info_.width = latents_.size(3);
  const int64_t classes = count > 0 ? labels_.max().item<int64_t>() + 1 : 0;
  for (int64_t k = 0; k < classes; ++k) info_.class_names.push_back(std::to_string(k));
}

Example LatentDataset::get(int64_t index) const {
  if (index < 0 || index >= info_.size)
    throw DataError("latent index " + std::to_string(index) + " out of range [0, " +
                    std::to_string(info_.size) + ")");
  return {latents_[index].clone(), labels_[index].item<int64_t>()};
}

}  // namespace diffuse
