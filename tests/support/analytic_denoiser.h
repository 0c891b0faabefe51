#pragma once
// Exact denoisers for Gaussian-mixture data (DESIGN §5), the ground truth of the analytic
// test suite. For x = x0 + σ n with x0 ~ Σ_k π_k N(μ_k, s_k² I) in R^d,
//   D(x; σ) = E[x0 | x] = Σ_k w_k(x, σ) [μ_k + s_k²/(s_k² + σ²) (x - μ_k)],
//   w_k ∝ π_k N(x; μ_k, (s_k² + σ²) I),
// computed in float64 with log-sum-exp. Tensors are [B, d] or [B, C, H, W] (flattened to
// d = C·H·W per sample).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "diffuse/core/seeded_noise.h"
#include "diffuse/models/diffusion_net.h"
#include "diffuse/precond/precond.h"

namespace diffuse::test {

struct GaussianMixture {
  std::vector<double> weights;             // π_k, summing to 1
  std::vector<std::vector<double>> means;  // μ_k, each of length d
  std::vector<double> variances;           // s_k²

  int64_t dim() const { return static_cast<int64_t>(means.front().size()); }
  int64_t components() const { return static_cast<int64_t>(weights.size()); }
  // The mixture's mean Σ π_k μ_k [d] and covariance Σ π_k (s_k² I + μ_k μ_kᵀ) - m mᵀ [d, d].
  torch::Tensor mean() const;
  torch::Tensor covariance() const;
};

// A single Gaussian N(μ, s² I) as a one-component mixture.
GaussianMixture single_gaussian(std::vector<double> mean, double variance);

// w_k(x, σ): [B, K] float64. sigma: [B].
torch::Tensor mixture_responsibilities(const GaussianMixture& mixture, const torch::Tensor& x,
                                       const torch::Tensor& sigma);
// D(x; σ) in x's shape and dtype (computed in float64). sigma: [B].
torch::Tensor mixture_denoise(const GaussianMixture& mixture, const torch::Tensor& x,
                              const torch::Tensor& sigma);
// log p_σ(x) of the noised mixture, [B] float64, differentiable in x (for Tweedie checks).
torch::Tensor mixture_log_density(const GaussianMixture& mixture, const torch::Tensor& x,
                                  double sigma);
DenoiserFn mixture_denoiser(GaussianMixture mixture);

// The exact velocity of the flow interpolant x_t = (1-t) x0 + t ε (flow matching's target):
// v(x_t, t) = E[ε - x0 | x_t] = (x_t - E[x0 | x_t])/t, with E[x0 | x_t] = D(x_t/(1-t); t/(1-t)).
// x_t in x's shape; t: [B]. float64.
torch::Tensor mixture_velocity(const GaussianMixture& mixture, const torch::Tensor& x_t,
                               const torch::Tensor& t);

// A flow network (1×2×2 "images", unconditional) that outputs the exact velocity v(x_t, t),
// reading t from its noise input c_noise = 1000 t: what a perfectly trained flow model computes.
class ExactVelocityNet : public DiffusionNet {
 public:
  explicit ExactVelocityNet(GaussianMixture mixture);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_cond, const torch::Tensor&) override;
  const ModelOptions& options() const override { return options_; }

 private:
  GaussianMixture mixture_;
  ModelOptions options_;
};

// The exact class posterior when component k carries class component_class[k]:
// log p(y | x, σ) = log Σ_{k: class k = y} w_k(x, σ), [B, num_classes] float64, differentiable
// in x (the classifier of classifier guidance).
torch::Tensor mixture_class_log_posterior(const GaussianMixture& mixture,
                                          const std::vector<int64_t>& component_class,
                                          int64_t num_classes, const torch::Tensor& x,
                                          const torch::Tensor& sigma);

// The mixture restricted to the components of class y, weights renormalised: p(x0 | y).
GaussianMixture class_conditional(const GaussianMixture& mixture,
                                  const std::vector<int64_t>& component_class, int64_t y);

// Probability-flow ODE solution for data N(μ, s² I) (Karras et al. 2022 eq. 1 with the
// Gaussian score): x(σ) = μ + √((s² + σ²)/(s² + σ_0²)) (x(σ_0) - μ). `mean` has d entries.
torch::Tensor gaussian_flow(const torch::Tensor& x_start, double sigma_start, double sigma,
                            const std::vector<double>& mean, double variance);

// Exact draws from the mixture: [B, d] float64, row b from seed stream b of `noise`.
torch::Tensor sample_mixture(const GaussianMixture& mixture, SeededNoise& noise);

}  // namespace diffuse::test
