#pragma once
// train.cuda_graph (DESIGN §6): the whole training step (forward, backward, gradient clipping,
// fused AdamW and the EMA update) captured once in a CUDA graph and replayed, so a step costs
// one graph launch instead of thousands of kernel launches from the host. Shapes are static:
// each step's inputs are copied into fixed buffers before the replay, and everything that
// changes between steps (learning rate, EMA weight, AdamW step counts) lives in device tensors.
#include <torch/torch.h>

#include <functional>
#include <memory>

#include "core/cuda_graph.h"
#include "diffuse/losses/dsm_loss.h"

namespace diffuse {

class GraphedTrainStep {
 public:
  // `body` evaluates the loss on its inputs, runs backward, clipping, the optimizer step and
  // the EMA update, and returns the loss (scalar). It must not synchronise with the host, nor
  // allocate state that outlives the step, nor drop gradients.
  using Body = std::function<torch::Tensor(const torch::Tensor& x0, const TrainingDraw& draw)>;

  // Throws ConfigError naming train.cuda_graph where capture cannot work: not a CUDA device,
  // a build without CUDA LibTorch 2.x, or without the fused optimizer.
  GraphedTrainStep(Body body, const torch::Device& device, bool fused_optimizer);

  // One training step on these inputs: the first call captures the graph, every call replays
  // it. Later inputs must have the shapes (and defined fields) of the first. Returns the loss,
  // a buffer that the next call overwrites.
  torch::Tensor run(const torch::Tensor& x0, const TrainingDraw& draw);

 private:
  Body body_;
  CudaGraph graph_;
  torch::Tensor x0_, loss_;  // static input and output buffers of the graph
  TrainingDraw draw_;
};

}  // namespace diffuse
