#pragma once
// Training batches on the training device, one batch ahead (DESIGN §6: data loading
// overlapped with compute). On CUDA the loader's workers fill page-locked host memory and
// batch n + 1 is copied on a side stream while step n runs; the compute stream waits on an
// event, never the host. On the CPU it is the loader itself.
#include <torch/torch.h>

#include <c10/core/Event.h>

#include <memory>
#include <optional>

#include "diffuse/data/data_loader.h"

namespace diffuse {

class DevicePrefetcher {
 public:
  // `loader` must outlive the prefetcher and be read through it only.
  DevicePrefetcher(DataLoader& loader, torch::Device device, bool channels_last);
  ~DevicePrefetcher();
  DevicePrefetcher(const DevicePrefetcher&) = delete;
  DevicePrefetcher& operator=(const DevicePrefetcher&) = delete;

  // The next batch on the device, ready for the current stream.
  Batch next();
  // The loader state of the batch next() returns next: what a checkpoint must store so that
  // a resumed run sees the same batches (the batch copied ahead is not consumed yet).
  LoaderState state() const;

 private:
  struct Ahead;
  void fetch();

  DataLoader& loader_;
  torch::Device device_;
  bool channels_last_;
  std::unique_ptr<Ahead> ahead_;  // CUDA only
};

}  // namespace diffuse
