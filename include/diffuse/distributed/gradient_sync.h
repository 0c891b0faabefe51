#pragma once
// Data-parallel gradients: after the backward pass every rank holds the mean of all ranks'
// gradients. The parameters are packed into buckets of about `bucket_bytes` in reverse order
// (the order in which the backward pass produces their gradients); an autograd hook on each
// parameter copies its gradient into its bucket, and a bucket's all-reduce starts as soon as
// the bucket is full, so communication overlaps the rest of the backward pass, as PyTorch
// DDP's Reducer does. Buckets are launched in index order on every rank, so the ranks always
// issue the same collectives in the same order.
#include <torch/torch.h>

#include <vector>

#include "diffuse/distributed/communicator.h"

namespace diffuse {

class GradientSync {
 public:
  // `communicator` must outlive this object. With one rank nothing is hooked.
  GradientSync(std::vector<torch::Tensor> params, Communicator& communicator,
               int64_t bucket_bytes = int64_t{25} << 20);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // The next backward pass is the step's last micro-batch: its hooks start the all-reduces.
  // Earlier micro-batches of gradient accumulation run unarmed and only accumulate locally.
  void arm();
  // Completes the step: launches the buckets whose gradients did not all arrive (parameters
  // that took no part), waits for every bucket and writes the mean gradients into .grad. A
  // parameter without a gradient on every rank keeps none, as in a single process.
  void finish();

 private:
  struct Bucket {
    torch::Tensor flat;            // [numel of its parameters + one presence flag each]
    std::vector<size_t> members;   // parameter indices
    std::vector<int64_t> offsets;  // start of each member in `flat`
    size_t arrived = 0;
    Communicator::Pending pending;
  };

  void on_gradient(size_t param, const torch::Tensor& grad);
  void stage(size_t param, const torch::Tensor& grad);
  void launch_in_order();

  std::vector<torch::Tensor> params_;
  Communicator& communicator_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_, slot_of_;  // parameter -> bucket, position among its members
  std::vector<bool> staged_;
  std::vector<unsigned> hooks_;
  size_t next_launch_ = 0;
  bool armed_ = false;
};

}  // namespace diffuse
