#pragma once
// Measurement operators y = A(x) for inverse problems (DESIGN §3, Chung et al. 2023 §4).
// An operator is built once from its options (masks and kernels drawn from the task seed)
// and the same object produces the measurement and guides the sampler, so both see the
// same mask or kernel. Operators work on any device and dtype: their fixed tensors are
// held in float64 on the CPU and cast to the input's options on use.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/core/option_schema.h"

namespace diffuse {

// The `operator:` section of a restore task (configs/restore/*.yaml). Each operator reads
// only its own keys (`keys` of its table entry); operator_options_schema() rejects the others.
struct OperatorOptions {
  std::string name = "inpaint_box";
  // inpaint_box: a box_size × box_size hole at (box_top, box_left); -1 centres the box on
  // that axis. random_box draws the position from `seed` instead.
  int64_t box_size = 14;
  int64_t box_top = -1;
  int64_t box_left = -1;
  bool random_box = false;
  // inpaint_random: fraction of pixels kept (the same pixels in every channel).
  double keep_fraction = 0.3;
  // gaussian_blur, motion_blur: odd kernel size k; gaussian σ in pixels; motion intensity in
  // [0, 1] (0: straight streak, 1: strongly curved shake).
  int64_t kernel_size = 9;
  double blur_sigma = 2.0;
  double intensity = 0.5;
  // super_resolution: average-pooling factor (2 or 4).
  int64_t factor = 2;
  // Draws the random box position, the random-pixel mask and the motion trajectory.
  uint64_t seed = 0;
};

class Operator {
 public:
  virtual ~Operator() = default;

  // Registry name, e.g. "gaussian_blur".
  virtual std::string name() const = 0;
  // x: [B, C, H, W] → y: [B, measurement_shape...]. Differentiable (autograd flows through).
  virtual torch::Tensor forward(const torch::Tensor& x) const = 0;
  virtual bool is_linear() const { return false; }
  // Aᵀ for linear operators: the exact adjoint of `forward`, ⟨A x, y⟩ = ⟨x, Aᵀ y⟩.
  // Non-linear operators throw ConfigError (dps_linear needs a linear operator).
  virtual torch::Tensor adjoint(const torch::Tensor& y) const;
  // Shape of one measurement, without the batch dimension.
  virtual std::vector<int64_t> measurement_shape() const = 0;
  // A measurement taken elsewhere (a file) as this operator's own output would hold it:
  // masking operators zero the pixels they remove, which carry no information and would
  // otherwise inflate ‖y - A(x̂0)‖. Others return y unchanged.
  virtual torch::Tensor conform_measurement(const torch::Tensor& y) const { return y; }
};

// Builds a registered operator for images of `channels` × `image_size` × `image_size`.
// Throws ConfigError naming the `operator.<key>` that does not fit the image, or listing the
// valid names for an unknown `name`.
std::unique_ptr<Operator> make_operator(const OperatorOptions& options, int64_t channels,
                                        int64_t image_size);

struct OperatorEntry {
  const char* name;
  const char* description;
  std::vector<std::string> keys;  // the OperatorOptions keys it reads, besides `name`
  std::unique_ptr<Operator> (*make)(const OperatorOptions& options, int64_t channels,
                                    int64_t image_size);
};
const std::vector<OperatorEntry>& operator_table();
// Comma-separated list of the registered names, for messages.
std::string operator_names();
// The table entry named `name`, or a ConfigError listing the valid names.
const OperatorEntry& find_operator(const std::string& name);

// Keys, valid values and meanings of OperatorOptions (README.md "Config reference"); also
// what make_operator checks the options against.
const OptionSchema<OperatorOptions>& operator_options_schema();

// ---- concrete operators ---------------------------------------------------------------

}  // namespace diffuse
