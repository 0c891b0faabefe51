#include "diffuse/core/round_robin.h"

#include <algorithm>

namespace diffuse {

std::vector<RowRange> RoundRobinBatches::batches_of(int64_t rank) const {
  std::vector<RowRange> ranges;
  for (int64_t b = rank; b < batches(); b += ranks)
    ranges.push_back({b * batch_size, std::min(total, (b + 1) * batch_size)});
  return ranges;
}

torch::Tensor RoundRobinBatches::pad(const torch::Tensor& local) const {
  std::vector<int64_t> shape = local.sizes().vec();
  shape[0] = padded_rows();
  auto padded = torch::zeros(shape, local.options());
  padded.narrow(0, 0, local.size(0)).copy_(local);
  return padded;
}

torch::Tensor RoundRobinBatches::reassemble(const torch::Tensor& gathered) const {
  std::vector<int64_t> shape = gathered.sizes().vec();
  shape[0] = total;
  auto out = torch::empty(shape, gathered.options());
  const int64_t rows = padded_rows();
  for (int64_t b = 0; b < batches(); ++b) {
    const int64_t count = std::min(batch_size, total - b * batch_size);
    out.narrow(0, b * batch_size, count)
        .copy_(gathered.narrow(0, (b % ranks) * rows + (b / ranks) * batch_size, count));
  }
  return out;
}

}  // namespace diffuse
