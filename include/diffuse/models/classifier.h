#pragma once
// Noise-conditional image classifier (model.arch: classifier): the encoder half of the ADM
// UNet (input conv, encoder levels, Res-Attention-Res middle) followed by GroupNorm, SiLU and
// attention pooling, as ADM's EncoderUNetModel with pool "attention" (Dhariwal & Nichol 2021
// §4.1; guided-diffusion unet.py). It reads model.unet (attention_resolutions,
// channel_mult, ...) and model.num_classes; the noise embedding is the UNet's.
#include <torch/torch.h>

#include <memory>

#include "diffuse/models/model_options.h"

namespace diffuse {

class ClassifierNet : public torch::nn::Module {
 public:
  // x: [B, C, H, W] (already scaled by c_in); noise_cond: [B] float. Returns logits [B, K].
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_cond) = 0;
  // The penultimate features [B, F]: the attention-pooled token before the output projection
  // (for feature-based evaluation, e.g. Fréchet distances).
  virtual torch::Tensor features(const torch::Tensor& x, const torch::Tensor& noise_cond) = 0;
  // The logits [B, K] of features [B, F]: forward(x, c) = logits_of(features(x, c)), so that an
  // evaluation needing both runs the network once.
  virtual torch::Tensor logits_of(const torch::Tensor& features) = 0;
  virtual const ModelOptions& options() const = 0;
  int64_t num_classes() const { return options().num_classes; }
};

// Builds the classifier from resolved options (num_classes >= 1). Throws ConfigError naming
// the key when the options do not fit (as make_unet).
std::shared_ptr<ClassifierNet> make_classifier(const ModelOptions& options);

}  // namespace diffuse
