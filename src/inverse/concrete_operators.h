#pragma once
// The concrete operators of the operator table (operator.cpp), private to src/: callers
// reach them through make_operator and the Operator interface (tests may include this).
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/inverse/operator.h"

namespace diffuse {

// Multiplies by a fixed {0, 1} mask [1, 1, H, W] shared over channels (inpainting). The
// measurement keeps the image shape with the missing pixels set to 0 (self-adjoint).
class MaskOperator : public Operator {
 public:
  MaskOperator(std::string name, torch::Tensor mask, int64_t channels);
  std::string name() const override { return name_; }
  torch::Tensor forward(const torch::Tensor& x) const override;
  bool is_linear() const override { return true; }
  torch::Tensor adjoint(const torch::Tensor& y) const override;
  std::vector<int64_t> measurement_shape() const override;
  const torch::Tensor& mask() const { return mask_; }
  torch::Tensor conform_measurement(const torch::Tensor& y) const override { return y * mask_.to(y.options()); }

 private:
  std::string name_;
  torch::Tensor mask_;  // [1, 1, H, W] float64, CPU
  int64_t channels_;
};

// inpaint_box: a zero box; inpaint_random: keeps exactly round(keep_fraction · H · W) pixels.
torch::Tensor box_mask(int64_t image_size, int64_t box_size, int64_t top, int64_t left);
torch::Tensor random_pixel_mask(int64_t image_size, double keep_fraction, uint64_t seed);

// Same-size 2-D blur with one k × k kernel applied to every channel, with reflect padding
// (the image is mirrored about its edge pixel, as in the DPS reference code, so dark
// Fashion-MNIST borders are not blurred into mid-grey). The padding is a gather, so its
// adjoint is the matching scatter-add and Aᵀ is exact: transposed convolution, then the
// padded border folded back onto the pixels it was copied from.
class ConvolutionOperator : public Operator {
 public:
  ConvolutionOperator(std::string name, torch::Tensor kernel, int64_t channels, int64_t image_size);
  std::string name() const override { return name_; }
  torch::Tensor forward(const torch::Tensor& x) const override;
  bool is_linear() const override { return true; }
  torch::Tensor adjoint(const torch::Tensor& y) const override;
  std::vector<int64_t> measurement_shape() const override;
  const torch::Tensor& kernel() const { return kernel_; }

 private:
  std::string name_;
  torch::Tensor kernel_;       // [k, k] float64, CPU, sums to 1
  torch::Tensor pad_index_;    // [H + k - 1] int64: source row/column of each padded one
  int64_t channels_, image_size_;
};

// Normalised isotropic Gaussian kernel of odd size k and std `sigma` pixels.
torch::Tensor gaussian_kernel(int64_t kernel_size, double sigma);
// Motion-blur kernel from a seeded random camera trajectory (see operator.cpp for the
// method); [k, k] float64, non-negative, sums to 1. Same seed → same kernel.
torch::Tensor motion_kernel(int64_t kernel_size, double intensity, uint64_t seed);

// super_resolution: average pooling by `factor`; Aᵀ = nearest upsampling / factor².
class AveragePoolOperator : public Operator {
 public:
  AveragePoolOperator(int64_t factor, int64_t channels, int64_t image_size);
  std::string name() const override { return "super_resolution"; }
  torch::Tensor forward(const torch::Tensor& x) const override;
  bool is_linear() const override { return true; }
  torch::Tensor adjoint(const torch::Tensor& y) const override;
  std::vector<int64_t> measurement_shape() const override;

 private:
  int64_t factor_, channels_, image_size_;
};

// denoise: A = I (only measurement noise).
class IdentityOperator : public Operator {
 public:
  IdentityOperator(int64_t channels, int64_t image_size);
  std::string name() const override { return "denoise"; }
  torch::Tensor forward(const torch::Tensor& x) const override { return x; }
  bool is_linear() const override { return true; }
  torch::Tensor adjoint(const torch::Tensor& y) const override { return y; }
  std::vector<int64_t> measurement_shape() const override;

 private:
  int64_t channels_, image_size_;
};

}  // namespace diffuse
