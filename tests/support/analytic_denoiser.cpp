#include "support/analytic_denoiser.h"

#include <cmath>
#include <stdexcept>

namespace diffuse::test {
namespace {

constexpr double kLogTwoPi = 1.8378770664093454836;

torch::Tensor means_tensor(const GaussianMixture& m) {  // [K, d] float64
  std::vector<torch::Tensor> rows;
  for (const auto& mu : m.means) rows.push_back(torch::tensor(mu, torch::kFloat64));
  return torch::stack(rows);
}

void check_mixture(const GaussianMixture& m) {
  if (m.weights.empty() || m.weights.size() != m.means.size() || m.weights.size() != m.variances.size())
    throw std::invalid_argument("GaussianMixture: weights, means and variances differ in length");
  for (const auto& mu : m.means)
    if (static_cast<int64_t>(mu.size()) != m.dim())
      throw std::invalid_argument("GaussianMixture: means differ in dimension");
}

// log π_k + log N(x; μ_k, (s_k² + σ²) I): [B, K]. x_flat [B, d], sigma [B], both float64.
torch::Tensor component_log_joint(const GaussianMixture& m, const torch::Tensor& x_flat,
                                  const torch::Tensor& sigma) {
  check_mixture(m);
  if (x_flat.size(1) != m.dim())
    throw std::invalid_argument("mixture of dimension " + std::to_string(m.dim()) +
                                " given samples of dimension " + std::to_string(x_flat.size(1)));
  const auto mu = means_tensor(m);                                         // [K, d]
  const auto s2 = torch::tensor(m.variances, torch::kFloat64);             // [K]
  const auto log_pi = torch::tensor(m.weights, torch::kFloat64).log();     // [K]
  const auto var = s2.unsqueeze(0) + sigma.square().unsqueeze(1);          // [B, K]
  const auto sq_dist = (x_flat.unsqueeze(1) - mu.unsqueeze(0)).square().sum(-1);  // [B, K]
  const double d = static_cast<double>(m.dim());
  return log_pi.unsqueeze(0) - 0.5 * sq_dist / var - 0.5 * d * (var.log() + kLogTwoPi);
}

}  // namespace

torch::Tensor GaussianMixture::mean() const {
  return (torch::tensor(weights, torch::kFloat64).unsqueeze(1) * means_tensor(*this)).sum(0);
}

torch::Tensor GaussianMixture::covariance() const {
  const auto mu = means_tensor(*this);
  const auto pi = torch::tensor(weights, torch::kFloat64);
  const auto s2 = torch::tensor(variances, torch::kFloat64);
  const auto m = mean();
  const auto second = torch::eye(dim(), torch::kFloat64) * (pi * s2).sum() +
                      torch::einsum("k,ki,kj->ij", {pi, mu, mu});
  return second - torch::outer(m, m);
}

GaussianMixture single_gaussian(std::vector<double> mean, double variance) {
  return GaussianMixture{{1.0}, {std::move(mean)}, {variance}};
}

torch::Tensor mixture_responsibilities(const GaussianMixture& mixture, const torch::Tensor& x,
                                       const torch::Tensor& sigma) {
  const auto x_flat = x.to(torch::kFloat64).reshape({x.size(0), -1});
  return torch::softmax(component_log_joint(mixture, x_flat, sigma.to(torch::kFloat64)), 1);
}

torch::Tensor mixture_denoise(const GaussianMixture& mixture, const torch::Tensor& x,
                              const torch::Tensor& sigma) {
  const auto x_flat = x.to(torch::kFloat64).reshape({x.size(0), -1});       // [B, d]
  const auto sigma64 = sigma.to(torch::kFloat64);
  // softmax subtracts the row maximum: the log-sum-exp normalisation of w_k.
  const auto w = torch::softmax(component_log_joint(mixture, x_flat, sigma64), 1);  // [B, K]
  const auto mu = means_tensor(mixture).unsqueeze(0);                      // [1, K, d]
  const auto s2 = torch::tensor(mixture.variances, torch::kFloat64).unsqueeze(0);  // [1, K]
  const auto shrink = (s2 / (s2 + sigma64.square().unsqueeze(1))).unsqueeze(2);    // [B, K, 1]
  const auto posterior_means = mu + shrink * (x_flat.unsqueeze(1) - mu);   // [B, K, d]
  const auto denoised = (w.unsqueeze(2) * posterior_means).sum(1);         // [B, d]
  return denoised.reshape(x.sizes()).to(x.scalar_type());
}

torch::Tensor mixture_log_density(const GaussianMixture& mixture, const torch::Tensor& x,
                                  double sigma) {
  const auto x_flat = x.reshape({x.size(0), -1});
  const auto sigma_b = torch::full({x.size(0)}, sigma, torch::kFloat64);
  return torch::logsumexp(component_log_joint(mixture, x_flat, sigma_b), 1);
}

DenoiserFn mixture_denoiser(GaussianMixture mixture) {
  return [mixture = std::move(mixture)](const torch::Tensor& x, const torch::Tensor& sigma) {
    return mixture_denoise(mixture, x, sigma);
  };
}

torch::Tensor mixture_velocity(const GaussianMixture& mixture, const torch::Tensor& x_t,
                               const torch::Tensor& t) {
  const auto x64 = x_t.to(torch::kFloat64);
  const auto t64 = t.to(torch::kFloat64);
  std::vector<int64_t> per_sample(static_cast<size_t>(x_t.dim()), 1);
  per_sample[0] = x_t.size(0);
  const auto t_b = t64.view(per_sample);
  const auto x0_hat = mixture_denoise(mixture, x64 / (1.0 - t_b), t64 / (1.0 - t64));
  return (x64 - x0_hat) / t_b;
}

torch::Tensor mixture_class_log_posterior(const GaussianMixture& mixture,
                                          const std::vector<int64_t>& component_class,
                                          int64_t num_classes, const torch::Tensor& x,
                                          const torch::Tensor& sigma) {
  const auto x_flat = x.to(torch::kFloat64).reshape({x.size(0), -1});
  const auto log_w = torch::log_softmax(component_log_joint(mixture, x_flat, sigma.to(torch::kFloat64)), 1);
  std::vector<torch::Tensor> per_class;
  for (int64_t y = 0; y < num_classes; ++y) {
    std::vector<int64_t> members;
    for (size_t k = 0; k < component_class.size(); ++k)
      if (component_class[k] == y) members.push_back(static_cast<int64_t>(k));
    per_class.push_back(torch::logsumexp(log_w.index_select(1, torch::tensor(members, torch::kLong)), 1));
  }
  return torch::stack(per_class, 1);
}

GaussianMixture class_conditional(const GaussianMixture& mixture,
                                  const std::vector<int64_t>& component_class, int64_t y) {
  GaussianMixture out;
  double total = 0.0;
  for (size_t k = 0; k < component_class.size(); ++k) {
    if (component_class[k] != y) continue;
    out.weights.push_back(mixture.weights[k]);
    out.means.push_back(mixture.means[k]);
    out.variances.push_back(mixture.variances[k]);
    total += mixture.weights[k];
  }
  for (auto& w : out.weights) w /= total;
  return out;
}

torch::Tensor gaussian_flow(const torch::Tensor& x_start, double sigma_start, double sigma,
                            const std::vector<double>& mean, double variance) {
  const auto x_flat = x_start.to(torch::kFloat64).reshape({x_start.size(0), -1});
  const auto mu = torch::tensor(mean, torch::kFloat64).unsqueeze(0);
  const double scale = std::sqrt((variance + sigma * sigma) / (variance + sigma_start * sigma_start));
  return (mu + scale * (x_flat - mu)).reshape(x_start.sizes());
}

torch::Tensor sample_mixture(const GaussianMixture& mixture, SeededNoise& noise) {
  check_mixture(mixture);
  // Component by inverse CDF of one uniform, then μ_k + s_k n.
  const auto u = noise.rand({1}, torch::kFloat64).squeeze(1);                     // [B]
  const auto cdf = torch::tensor(mixture.weights, torch::kFloat64).cumsum(0);     // [K]
  const auto k = torch::searchsorted(cdf, u, /*out_int32=*/false, /*right=*/true)
                     .clamp_max(mixture.components() - 1);                        // [B]
  const auto mu = means_tensor(mixture).index_select(0, k);                       // [B, d]
  const auto s = torch::tensor(mixture.variances, torch::kFloat64).sqrt().index_select(0, k);
  return mu + s.unsqueeze(1) * noise.randn({mixture.dim()}, torch::kFloat64);
}

ExactVelocityNet::ExactVelocityNet(GaussianMixture mixture) : mixture_(std::move(mixture)) {
  options_.in_channels = 1;
  options_.image_size = 2;
  options_.num_classes = 0;
}

torch::Tensor ExactVelocityNet::forward(const torch::Tensor& x, const torch::Tensor& noise_cond, const torch::Tensor&) {
  return mixture_velocity(mixture_, x, noise_cond.to(torch::kFloat64) / 1000.0).to(x.scalar_type());
}

}  // namespace diffuse::test
