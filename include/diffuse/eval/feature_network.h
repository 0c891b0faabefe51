#pragma once
// Feature networks for sample-quality metrics (`diffuse eval`, training-time evaluation): a
// map from images [B, C, H, W] in [-1, 1] to feature vectors [B, F], with an identity string
// that stats files record so that features of different networks are never compared.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

namespace diffuse {

struct FeatureBatch {
  torch::Tensor features;  // [B, F] float32 on the CPU
  torch::Tensor logits;    // [B, K] float32 on the CPU; undefined for networks without classes
};

class FeatureNetwork {
 public:
  virtual ~FeatureNetwork() = default;
  // images: [B, C, H, W] float in [-1, 1] on any device.
  virtual FeatureBatch extract(const torch::Tensor& images) = 0;
  // What the features depend on: the kind, a CRC-32 of every weight and the input
  // preprocessing, e.g. "diffuse-classifier ema crc32=1a2b3c4d in=1x28x28".
  virtual const std::string& identity() const = 0;
  // Classes the logits cover (0: no logits).
  virtual int64_t num_classes() const = 0;
};

// A diffuse classifier checkpoint (model.arch: classifier; `diffuse train` with
// configs/fashion_features.yaml): its penultimate features, the attention-pooled token, and
// its logits, at σ = 0. Throws CheckpointError/ConfigError naming the path for a missing,
// damaged or non-classifier checkpoint.
std::unique_ptr<FeatureNetwork> load_classifier_features(const std::string& path, bool use_ema,
                                                         torch::Device device);

// How images are prepared for a TorchScript feature network.
enum class FeatureInputRange { minus_one_one, unit, uint8 };
struct TorchScriptInput {
  int64_t size = 0;      // resize (bilinear) to size × size; 0 keeps the images' size
  int64_t channels = 3;  // 1 or 3: grey images are repeated to 3 channels, colour ones averaged to 1
  FeatureInputRange range = FeatureInputRange::uint8;  // [-1, 1], [0, 1] or [0, 255]
};

// Any TorchScript module whose forward(images) returns features [B, F] (a tensor, or a tuple
// or list whose first element is one). The standard FID Inception-v3 takes 3 channels in
// [0, 255] and resizes to 299 × 299 itself (README, "Evaluation"). Throws DataError naming
// the path for a file that is not a TorchScript archive.
std::unique_ptr<FeatureNetwork> load_torchscript_features(const std::string& path, const TorchScriptInput& input,
                                                          torch::Device device);

// "torchscript:PATH" → load_torchscript_features, anything else is a classifier checkpoint.
std::unique_ptr<FeatureNetwork> load_feature_network(const std::string& spec, const TorchScriptInput& input,
                                                     torch::Device device);

}  // namespace diffuse
