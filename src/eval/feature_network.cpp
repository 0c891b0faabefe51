#include "diffuse/eval/feature_network.h"

#include <torch/script.h>
#include <zlib.h>

#include <cstdio>
#include <filesystem>

#include "diffuse/core/error.h"
#include "diffuse/core/text.h"
#include "diffuse/train/classifier_trainer.h"

namespace diffuse {
namespace {

// CRC-32 over the names, shapes and bytes of `tensors` in order: the weights' part of a
// feature network's identity.
uint32_t tensors_crc32(const std::vector<std::pair<std::string, torch::Tensor>>& tensors) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto add = [&crc](const void* data, size_t bytes) {
    crc = crc32(crc, static_cast<const Bytef*>(data), static_cast<uInt>(bytes));
  };
  for (const auto& [name, tensor] : tensors) {
    add(name.data(), name.size());
    for (const int64_t s : tensor.sizes()) add(&s, sizeof s);
    const auto cpu = tensor.detach().to(torch::kCPU).contiguous();
    const auto* bytes = static_cast<const char*>(cpu.data_ptr());
    // zlib takes at most 4 GiB per call.
    constexpr size_t kChunk = size_t{1} << 30;
    for (size_t done = 0; done < cpu.nbytes(); done += kChunk) add(bytes + done, std::min(kChunk, cpu.nbytes() - done));
  }
  return static_cast<uint32_t>(crc);
}

std::string hex32(uint32_t value) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", value);
  return text;
}

std::string shape_text(const torch::Tensor& images) { return join(images.sizes().slice(1), "x"); }

class ClassifierFeatureNetwork : public FeatureNetwork {
 public:
  ClassifierFeatureNetwork(LoadedClassifier loaded, std::string path, torch::Device device)
      : loaded_(std::move(loaded)), path_(std::move(path)), device_(device) {
    std::vector<std::pair<std::string, torch::Tensor>> weights;
    for (const auto& p : loaded_.classifier->named_parameters()) weights.emplace_back(p.key(), p.value());
    for (const auto& b : loaded_.classifier->named_buffers()) weights.emplace_back(b.key(), b.value());
    const auto& m = loaded_.config.model;
    identity_ = "diffuse-classifier " + std::string(loaded_.using_ema ? "ema" : "raw") + " crc32=" +
                hex32(tensors_crc32(weights)) + " in=" + std::to_string(m.in_channels) + "x" +
                std::to_string(m.image_size) + "x" + std::to_string(m.image_size);
  }

  FeatureBatch extract(const torch::Tensor& images) override {
    const auto& m = loaded_.config.model;
    if (images.dim() != 4 || images.size(1) != m.in_channels || images.size(2) != m.image_size ||
        images.size(3) != m.image_size)
      throw DataError("feature network " + path_ + " takes images of " + std::to_string(m.in_channels) + "x" +
                      std::to_string(m.image_size) + "x" + std::to_string(m.image_size) + ", found " +
                      shape_text(images));
    torch::NoGradGuard no_grad;
    const auto x = images.to(device_, torch::kFloat32);
    const auto sigma = torch::zeros({x.size(0)}, x.options());
    auto features = loaded_.classifier->features(x, sigma);
    auto logits = loaded_.classifier->net().logits_of(features);
    return {features.to(torch::kCPU, torch::kFloat32), logits.to(torch::kCPU, torch::kFloat32)};
  }
  const std::string& identity() const override { return identity_; }
  int64_t num_classes() const override { return loaded_.config.model.num_classes; }

 private:
  LoadedClassifier loaded_;
  std::string path_;
  torch::Device device_;
  std::string identity_;
};

class TorchScriptFeatureNetwork : public FeatureNetwork {
 public:
  TorchScriptFeatureNetwork(torch::jit::Module module, std::string path, TorchScriptInput input, torch::Device device)
      : module_(std::move(module)), path_(std::move(path)), input_(input), device_(device) {
    std::vector<std::pair<std::string, torch::Tensor>> weights;
    for (const auto& p : module_.named_parameters()) weights.emplace_back(p.name, p.value);
    for (const auto& b : module_.named_buffers()) weights.emplace_back(b.name, b.value);
    static const char* kRangeNames[] = {"-1..1", "0..1", "0..255"};
    identity_ = "torchscript crc32=" + hex32(tensors_crc32(weights)) + " size=" + std::to_string(input_.size) +
                " channels=" + std::to_string(input_.channels) + " range=" +
                kRangeNames[static_cast<int>(input_.range)];
  }

  FeatureBatch extract(const torch::Tensor& images) override {
    if (images.dim() != 4 || (images.size(1) != 1 && images.size(1) != 3))
      throw DataError("feature network " + path_ + ": expected images [B, 1 or 3, H, W], found " + shape_text(images));
    torch::NoGradGuard no_grad;
    auto x = images.to(device_, torch::kFloat32);
    if (x.size(1) != input_.channels) x = input_.channels == 3 ? x.expand({-1, 3, -1, -1}) : x.mean(1, true);
    if (input_.size > 0 && (x.size(2) != input_.size || x.size(3) != input_.size))
      x = torch::nn::functional::interpolate(
          x, torch::nn::functional::InterpolateFuncOptions()
                 .size(std::vector<int64_t>{input_.size, input_.size})
                 .mode(torch::kBilinear)
                 .align_corners(false));
    // The uint8 range is the pixel values files hold: round((x + 1) · 127.5), as image_io writes.
    if (input_.range == FeatureInputRange::unit) x = (x.clamp(-1, 1) + 1) * 0.5;
    if (input_.range == FeatureInputRange::uint8) x = ((x.clamp(-1, 1) + 1) * 127.5).round();
    c10::IValue out;
    try {
      out = module_.forward({x.contiguous()});
    } catch (const c10::Error& e) {
      throw DataError("feature network " + path_ + " failed on a batch of " + shape_text(x) + ": " +
                      e.what_without_backtrace());
    }
    if ((out.isTuple() && !out.toTupleRef().elements().empty())) out = out.toTupleRef().elements()[0];
    else if (out.isList() && !out.toListRef().empty()) out = out.toListRef()[0];
    if (!out.isTensor())
      throw DataError("feature network " + path_ + ": forward returned " + out.tagKind() + ", expected a tensor [B, F]");
    auto features = out.toTensor();
    if (features.dim() == 4 && features.size(2) == 1 && features.size(3) == 1) features = features.flatten(1);
    if (features.dim() != 2 || features.size(0) != x.size(0))
      throw DataError("feature network " + path_ + ": forward returned a tensor of " + std::to_string(features.dim()) +
                      " dimensions for " + std::to_string(x.size(0)) + " images, expected [B, F]");
    return {features.to(torch::kCPU, torch::kFloat32), torch::Tensor()};
  }
  const std::string& identity() const override { return identity_; }
  int64_t num_classes() const override { return 0; }

 private:
  torch::jit::Module module_;
  std::string path_;
  TorchScriptInput input_;
  torch::Device device_;
  std::string identity_;
};

}  // namespace

std::unique_ptr<FeatureNetwork> load_classifier_features(const std::string& path, bool use_ema, torch::Device device) {
  LoadedClassifier loaded = load_classifier(path, use_ema, device);
  return std::make_unique<ClassifierFeatureNetwork>(std::move(loaded), path, device);
}

std::unique_ptr<FeatureNetwork> load_torchscript_features(const std::string& path, const TorchScriptInput& input,
                                                          torch::Device device) {
  if (!std::filesystem::is_regular_file(path)) throw DataError(path + ": no such TorchScript feature network file");
  if (input.channels != 1 && input.channels != 3)
    throw DataError(path + ": feature input channels must be 1 or 3, found " + std::to_string(input.channels));
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    throw DataError(path + ": not a TorchScript module (save one with torch.jit.save(torch.jit.script(net), path)): " +
                    e.what_without_backtrace());
  }
  module.eval();
  return std::make_unique<TorchScriptFeatureNetwork>(std::move(module), path, input, device);
}

std::unique_ptr<FeatureNetwork> load_feature_network(const std::string& spec, const TorchScriptInput& input,
                                                     torch::Device device) {
  const std::string prefix = "torchscript:";
  if (spec.rfind(prefix, 0) == 0) return load_torchscript_features(spec.substr(prefix.size()), input, device);
  return load_classifier_features(spec, true, device);
}

}  // namespace diffuse
