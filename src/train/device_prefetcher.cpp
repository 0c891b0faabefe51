#include "train/device_prefetcher.h"

#if defined(DIFFUSE_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "diffuse/core/error.h"

namespace diffuse {

struct DevicePrefetcher::Ahead {
  Batch batch;             // on the device, written by the copy stream
  LoaderState state;       // the loader state before this batch was taken
  c10::Event ready{c10::DeviceType::CUDA};
#if defined(DIFFUSE_WITH_CUDA)
  std::optional<c10::cuda::CUDAStream> copy_stream;
#endif
};

DevicePrefetcher::DevicePrefetcher(DataLoader& loader, torch::Device device, bool channels_last)
    : loader_(loader), device_(device), channels_last_(channels_last) {
  if (!device_.is_cuda()) return;
#if defined(DIFFUSE_WITH_CUDA)
  ahead_ = std::make_unique<Ahead>();
  ahead_->copy_stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index());
  fetch();
#else
  throw Error("device " + device_.str() + ": this build of diffuse has no CUDA support");
#endif
}

DevicePrefetcher::~DevicePrefetcher() = default;

void DevicePrefetcher::fetch() {
#if defined(DIFFUSE_WITH_CUDA)
  ahead_->state = loader_.state();
  Batch host = loader_.next();
  c10::cuda::CUDAStreamGuard guard(*ahead_->copy_stream);
  ahead_->batch.images = host.images.to(device_, /*non_blocking=*/true);
  ahead_->batch.labels = host.labels.to(device_, /*non_blocking=*/true);
  if (host.noise.defined()) ahead_->batch.noise = host.noise.to(device_, /*non_blocking=*/true);
  ahead_->ready.record(*ahead_->copy_stream);
#endif
}

Batch DevicePrefetcher::next() {
  if (!ahead_) return loader_.next();
  Batch batch;
#if defined(DIFFUSE_WITH_CUDA)
  const auto compute = c10::cuda::getCurrentCUDAStream(device_.index());
  ahead_->ready.block(compute);
  batch = std::move(ahead_->batch);
  // The tensors were allocated on the copy stream; tell the caching allocator that the compute
  // stream uses them too, so their memory is not reused before the step has read it.
  batch.images.record_stream(compute);
  batch.labels.record_stream(compute);
  if (batch.noise.defined()) batch.noise.record_stream(compute);
  fetch();
  if (channels_last_) batch.images = batch.images.contiguous(torch::MemoryFormat::ChannelsLast);
#endif
  return batch;
}

LoaderState DevicePrefetcher::state() const { return ahead_ ? ahead_->state : loader_.state(); }

}  // namespace diffuse
