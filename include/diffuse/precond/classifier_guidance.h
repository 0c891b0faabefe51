#pragma once
// Classifier guidance (Dhariwal & Nichol 2021, §4; Song et al. 2021 §5 / App. I) as a
// denoiser wrapper (DESIGN §3). With Tweedie's D(x; σ) = x + σ² ∇log p_σ(x) and
// ∇log p_σ(x | y) = ∇log p_σ(x) + ∇log p_σ(y | x), guidance of scale s is
//   D_cg(x; σ) = D(x; σ) + s σ² ∇_x log p(y | x, σ),
// s = 1 the exact class-conditional denoiser, s > 1 sharper (their eq. 10's p(y|x)^s).
// D may itself be a CFG wrapper, so the two compose.
#include <torch/torch.h>

#include <functional>
#include <memory>

#include "diffuse/models/classifier.h"
#include "diffuse/models/classifier_options.h"
#include "diffuse/precond/precond.h"
#include "diffuse/schedule/noise_schedule.h"

namespace diffuse {

// Logits (or log-probabilities) of p(y | x, σ): [B, K] for σ-space x [B, ...] and σ [B].
// Must be differentiable in x.
using ClassifierFn = std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& sigma)>;

// labels: [B] int64, the class each sample is guided to. scale 0 returns `denoiser` itself.
// The gradient is taken with autograd enabled inside the call (samplers run without it) and
// per sample: log_softmax(logits)[b, y_b] summed over the batch has the per-sample gradients.
Denoiser make_classifier_guided_denoiser(Denoiser denoiser, ClassifierFn classifier,
                                         torch::Tensor labels, double scale);

// A trained ClassifierNet with its σ conditioning: the network sees c_in·x with
// c_in = 1/√(1+σ²) (unit-scale inputs, as the VP state) and c_noise = the schedule's noise
// input at max(σ, σ_min) (so σ = 0, a clean image, is defined for every schedule); a
// classifier trained with classifier.noise none sees c_noise = 0 always.
class NoisyClassifierImpl : public torch::nn::Module {
 public:
  NoisyClassifierImpl(std::shared_ptr<ClassifierNet> net, NoiseSchedule schedule, ClassifierNoise noise);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& sigma);   // logits [B, K]
  torch::Tensor features(const torch::Tensor& x, const torch::Tensor& sigma);  // [B, F]
  ClassifierNet& net() { return *net_; }
  std::shared_ptr<ClassifierNet> net_ptr() const { return net_; }

 private:
  std::pair<torch::Tensor, torch::Tensor> conditioning(const torch::Tensor& x, const torch::Tensor& sigma) const;
  std::shared_ptr<ClassifierNet> net_;
  NoiseSchedule schedule_;
  ClassifierNoise noise_;
};
TORCH_MODULE(NoisyClassifier);

}  // namespace diffuse
