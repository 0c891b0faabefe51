#pragma once
// One CUDA graph (DESIGN §6): a body captured once on a side stream and replayed on the
// current stream. The body's inputs and outputs are the caller's static buffers: copy new
// values into the inputs before replay(), read the outputs after it.
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

namespace diffuse {

class CudaGraph {
 public:
  // Throws ConfigError starting with `what` (the flag or key asking for graphs) unless this
  // build can capture CUDA graphs (CUDA LibTorch 2.x) and `device` is a CUDA device.
  CudaGraph(const torch::Device& device, const std::string& what);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Records `body` without running it. Autocast's weight cache is off meanwhile: cached casts
  // would be graph-private memory shared across replays.
  void capture(const std::function<void()>& body);
  bool captured() const { return captured_; }
  // Runs the captured work on the current stream.
  void replay();

  // Whether this build can capture CUDA graphs at all.
  static bool supported();
  // Throws the constructor's ConfigError unless graphs can be captured on `device`; touches
  // no CUDA state, so a command can check its flags before doing any work.
  static void check_usable(const torch::Device& device, const std::string& what);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  torch::Device device_;
  bool captured_ = false;
};

// Copies `from` into the static input `to` of a captured graph; `what` names the input in the
// error raised when its presence or shape differs from the captured one.
void copy_graph_input(torch::Tensor& to, const torch::Tensor& from, const std::string& what);

}  // namespace diffuse
