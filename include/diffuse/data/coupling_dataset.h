#pragma once
// (noise, sample) couplings for reflow (Liu et al. 2023 §2.2, "Flow straight and fast"): each
// item is a sample the teacher's ODE produced from a noise draw, with that noise and the
// label it was generated for. The folder (data.type: couplings, data.path) is written by
// diffuse reflow (distill/reflow.h): couplings.json names the image shape and classes, and
// pairs_NNNNNN.pt files hold torch::save of {noise [n,C,H,W], samples [n,C,H,W], labels [n]}.
#include <torch/torch.h>

#include <string>

#include "diffuse/data/data_options.h"
#include "diffuse/data/dataset.h"

namespace diffuse {

class CouplingDataset : public Dataset {
 public:
  // Throws DataError naming the folder or file when the manifest or a chunk is missing,
  // unreadable or does not fit the manifest.
  explicit CouplingDataset(const DataOptions& options);

  const DatasetInfo& info() const override { return info_; }
  Example get(int64_t index) const override;

 private:
  torch::Tensor noise_, samples_;  // [N, C, H, W] float32
  torch::Tensor labels_;           // [N] int64
  DatasetInfo info_;
};

}  // namespace diffuse
