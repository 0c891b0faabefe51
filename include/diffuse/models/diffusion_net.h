#pragma once
// The network F of D(x; σ) = c_skip x + c_out F(c_in x, c_noise, y) (DESIGN §3). Every
// architecture in the zoo implements this one interface; nothing outside models/ knows
// which architecture it is talking to.
#include <torch/torch.h>

#include "diffuse/models/model_options.h"

namespace diffuse {

class DiffusionNet : public torch::nn::Module {
 public:
  // x: [B, C, H, W] (already scaled by c_in); noise_cond: [B] float (c_noise: t for VP
  // models, ln(σ)/4 for EDM); labels: [B] int64 in [0, num_classes] where num_classes is the
  // null (unconditional) class, or an undefined tensor for unconditional models.
  // Returns [B, out_channels, H, W]; out_channels = 2C when learn_sigma (the second half is
  // the variance interpolation v of Nichol & Dhariwal 2021, eq. 15).
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_cond,
                                const torch::Tensor& labels) = 0;

  // The resolved options this network was built from (no 0/-1 "from dataset" values left).
  virtual const ModelOptions& options() const = 0;

  int64_t num_classes() const { return options().num_classes; }
  // Index of the null label used for classifier-free guidance; -1 when unconditional.
  int64_t null_label() const { return num_classes() > 0 ? num_classes() : -1; }
  bool learns_sigma() const { return options().learn_sigma; }
};

}  // namespace diffuse
