#pragma once
// The class labels of samples [begin, end) of a generation run: options.labels cycled over the
// samples, or all `classes` in turn when none are given. Private to src/ (generate.cpp, the
// straightness measure of distill/reflow.cpp and inversion draw labels the same way).
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/core/error.h"

namespace diffuse {

inline torch::Tensor sample_labels(const std::vector<int64_t>& labels, int64_t classes, int64_t begin, int64_t end,
                                   const torch::Device& device) {
  std::vector<int64_t> ids;
  for (int64_t k = begin; k < end; ++k)
    ids.push_back(labels.empty() ? k % classes : labels[static_cast<size_t>(k) % labels.size()]);
  return torch::tensor(ids, torch::kLong).to(device);
}

// Throws ConfigError unless every label indexes one of `classes` classes of the `owner`
// ("model" or "classifier").
inline void check_sample_labels(const std::vector<int64_t>& labels, int64_t classes, const char* owner) {
  for (int64_t label : labels)
    if (label < 0 || label >= classes)
      throw ConfigError("class " + std::to_string(label) + " is out of range: the " + owner + " has " +
                        std::to_string(classes) + " classes (0-" + std::to_string(classes - 1) + ")");
}

}  // namespace diffuse
