#include "core/cuda_graph.h"

#include "diffuse/core/compat.h"
#include "diffuse/core/error.h"

#if defined(DIFFUSE_WITH_CUDA) && DIFFUSE_TORCH2
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define DIFFUSE_CUDA_GRAPHS 1
#else
#define DIFFUSE_CUDA_GRAPHS 0
#endif

namespace diffuse {

struct CudaGraph::Impl {
#if DIFFUSE_CUDA_GRAPHS
  at::cuda::CUDAGraph graph;
#endif
};

bool CudaGraph::supported() { return DIFFUSE_CUDA_GRAPHS != 0; }

void CudaGraph::check_usable(const torch::Device& device, const std::string& what) {
  if (!supported())
    throw ConfigError(what + ": this build cannot capture CUDA graphs (it needs a CUDA LibTorch "
                      "2.x; built against LibTorch " + compat::torch_version() + ")");
  if (!device.is_cuda())
    throw ConfigError(what + ": CUDA graphs need a CUDA device; this run uses " + device.str());
}

CudaGraph::CudaGraph(const torch::Device& device, const std::string& what) : device_(device) {
  check_usable(device, what);
  // Only now: constructing at::cuda::CUDAGraph calls into the CUDA runtime, which throws on a
  // machine without a driver.
  impl_ = std::make_unique<Impl>();
}

CudaGraph::~CudaGraph() = default;

void CudaGraph::capture(const std::function<void()>& body) {
#if DIFFUSE_CUDA_GRAPHS
  // PyTorch's recipe: capture on a side stream that first waits for the work queued so far
  // (the static inputs were just written on the current stream).
  const auto current = c10::cuda::getCurrentCUDAStream(device_.index());
  auto side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index());
  c10::Event inputs_ready(c10::DeviceType::CUDA);
  inputs_ready.record(current);
  inputs_ready.block(side);
  {
    c10::cuda::CUDAStreamGuard guard(side);
    const bool cache = at::autocast::is_autocast_cache_enabled();
    at::autocast::set_autocast_cache_enabled(false);
    try {
      impl_->graph.capture_begin();
      body();
      impl_->graph.capture_end();
    } catch (...) {
      at::autocast::set_autocast_cache_enabled(cache);
      throw;
    }
    at::autocast::set_autocast_cache_enabled(cache);
  }
  c10::Event done(c10::DeviceType::CUDA);
  done.record(side);
  done.block(current);
#else
  (void)body;
#endif
  captured_ = true;
}

void CudaGraph::replay() {
#if DIFFUSE_CUDA_GRAPHS
  impl_->graph.replay();
#endif
}

void copy_graph_input(torch::Tensor& to, const torch::Tensor& from, const std::string& what) {
  if (to.defined() != from.defined() || (to.defined() && to.sizes() != from.sizes()))
    throw Error("CUDA graph: " + what + " changed shape after capture (graphs replay static shapes)");
  if (to.defined()) to.copy_(from, /*non_blocking=*/true);
}

}  // namespace diffuse
