#pragma once
// Exponential moving average of the weights (Polyak averaging), kept in a second network.
#include <memory>

#include "diffuse/models/diffusion_net.h"

namespace diffuse {

class Ema {
 public:
  // `average` must be a network of the same architecture as the one it tracks (a
  // DiffusionNet or a ClassifierNet); its weights are set to the tracked network's by the
  // first update (or by copy_from).
  Ema(std::shared_ptr<torch::nn::Module> average, double decay, bool warmup);

  // decay_n = min(decay, (1 + n)/(10 + n)) with warm-up (as in the TensorFlow / ADM code),
  // ema ← ema + (1 − decay_n)(θ − ema); buffers are copied.
  void update(const torch::nn::Module& model, int64_t step);
  // The same with the weight 1 − decay_n given as a 0-dim tensor on the device, so that no
  // host value is baked into a captured CUDA graph.
  void update(const torch::nn::Module& model, const torch::Tensor& weight);
  void copy_from(const torch::nn::Module& model);
  double decay_at(int64_t step) const;

  // The averaged network as the type it was built as.
  template <class Net = DiffusionNet>
  std::shared_ptr<Net> net_ptr() const {
    return std::dynamic_pointer_cast<Net>(average_);
  }
  template <class Net = DiffusionNet>
  Net& net() {
    return *net_ptr<Net>();
  }

 private:
  std::shared_ptr<torch::nn::Module> average_;
  std::vector<torch::Tensor> average_params_;
  double decay_;
  bool warmup_;
};

}  // namespace diffuse
