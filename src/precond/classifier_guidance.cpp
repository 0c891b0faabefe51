#include "diffuse/precond/classifier_guidance.h"

#include "diffuse/core/error.h"

namespace diffuse {

Denoiser make_classifier_guided_denoiser(Denoiser denoiser, ClassifierFn classifier,
                                         torch::Tensor labels, double scale) {
  if (scale == 0.0) return denoiser;
  if (!labels.defined()) throw ConfigError("classifier guidance needs class labels (--class or --classes)");
  return [denoiser = std::move(denoiser), classifier = std::move(classifier), labels,
          scale](const torch::Tensor& x, const torch::Tensor& sigma) {
    torch::Tensor grad;
    {
      torch::AutoGradMode enable_grad(true);
      auto x_in = x.detach().requires_grad_(true);
      const auto log_probs = torch::log_softmax(classifier(x_in, sigma).to(torch::kFloat64), 1);  // [B, K]
      const auto chosen = log_probs.gather(1, labels.to(log_probs.device()).view({-1, 1})).sum();
      grad = torch::autograd::grad({chosen}, {x_in})[0];
    }
    std::vector<int64_t> per_sample(static_cast<size_t>(x.dim()), 1);
    per_sample[0] = x.size(0);
    const auto sigma_sq = sigma.to(grad.scalar_type()).square().view(per_sample);
    // The auxiliary outputs (the learned variance) pass through: guidance shifts the mean only.
    auto out = denoiser.evaluate(x, sigma);
    out.denoised = out.denoised + scale * sigma_sq.to(out.denoised.scalar_type()) * grad.to(out.denoised.scalar_type());
    return out;
  };
}

NoisyClassifierImpl::NoisyClassifierImpl(std::shared_ptr<ClassifierNet> net, NoiseSchedule schedule,
                                         ClassifierNoise noise)
    : net_(std::move(net)), schedule_(std::move(schedule)), noise_(noise) {
  register_module("net", net_);
}

std::pair<torch::Tensor, torch::Tensor> NoisyClassifierImpl::conditioning(const torch::Tensor& x,
                                                                          const torch::Tensor& sigma) const {
  const auto s = sigma.to(torch::kFloat32);
  const auto c_in = torch::rsqrt(1.0 + s.square()).view({-1, 1, 1, 1});
  const auto c_noise = noise_ == ClassifierNoise::none
                           ? torch::zeros_like(s)
                           : schedule_.noise_input(s.clamp_min(static_cast<float>(schedule_.sigma_min())));
  return {x.to(torch::kFloat32) * c_in, c_noise};
}

torch::Tensor NoisyClassifierImpl::forward(const torch::Tensor& x, const torch::Tensor& sigma) {
  const auto [input, c_noise] = conditioning(x, sigma);
  return net_->forward(input, c_noise);
}

torch::Tensor NoisyClassifierImpl::features(const torch::Tensor& x, const torch::Tensor& sigma) {
  const auto [input, c_noise] = conditioning(x, sigma);
  return net_->features(input, c_noise);
}

}  // namespace diffuse
