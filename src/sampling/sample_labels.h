#pragma once
// The class labels of samples [begin, end) of a generation run: options.labels cycled over the
// samples, or all `classes` in turn when none are given. Private to src/ (generate.cpp and
// the straightness measure of distill/reflow.cpp draw the same labels for the same seeds).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace diffuse {

inline torch::Tensor sample_labels(const std::vector<int64_t>& labels, int64_t classes, int64_t begin, int64_t end,
                                   const torch::Device& device) {
  std::vector<int64_t> ids;
  for (int64_t k = begin; k < end; ++k)
    ids.push_back(labels.empty() ? k % classes : labels[static_cast<size_t>(k) % labels.size()]);
  return torch::tensor(ids, torch::kLong).to(device);
}

}  // namespace diffuse
