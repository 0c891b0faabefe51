#pragma once
// Data-parallel runs that must give the one-process result (sampling, feature extraction):
// the rows a single process would run in batches of `batch_size` (the last may be short)
// are dealt out round robin, batch b to rank b mod ranks. Every rank pads its rows to the
// same count, so that one all_gather brings them together, and `reassemble` puts the
// gathered rows back in the one-process order.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace diffuse {

struct RowRange {
  int64_t begin = 0, end = 0;
};

struct RoundRobinBatches {
  int64_t total = 0;  // rows in the one-process order
  int64_t batch_size = 1;
  int64_t ranks = 1;

  int64_t batches() const { return (total + batch_size - 1) / batch_size; }
  // Rows every rank sends: as many full batches as the rank with the most has.
  int64_t padded_rows() const { return (batches() + ranks - 1) / ranks * batch_size; }
  // The row ranges of the batches `rank` runs, in order.
  std::vector<RowRange> batches_of(int64_t rank) const;
  // `local` (this rank's rows [n, ...], n <= padded_rows()) zero-padded to padded_rows().
  torch::Tensor pad(const torch::Tensor& local) const;
  // [total, ...] in the one-process order from every rank's padded rows, concatenated in
  // rank order.
  torch::Tensor reassemble(const torch::Tensor& gathered) const;
};

}  // namespace diffuse
