#pragma once
// Shared pieces of the analytic sampler tests: seeds, the three-mode 2-D mixture, running a
// sampler from seeded noise, and sample moments against a mixture within standard errors.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "diffuse/sampling/sampler.h"
#include "support/analytic_denoiser.h"

namespace diffuse::test {

std::vector<uint64_t> seed_range(uint64_t begin, uint64_t end);

// Three well-separated 2-D modes with weights 0.5, 0.3, 0.2.
GaussianMixture three_modes_2d();

// Draws x = σ_0 n from each sample's own stream, then runs `sampler` with `denoiser` on the
// same streams.
torch::Tensor run_sampler(const SamplerFn& sampler, const DenoiserFn& denoiser,
                          const std::vector<double>& sigmas, const std::vector<uint64_t>& seeds,
                          const SamplerOptions& options, torch::IntArrayRef sample_shape,
                          torch::Dtype dtype = torch::kFloat64);
torch::Tensor run_sampler(const SamplerFn& sampler, const GaussianMixture& mixture,
                          const std::vector<double>& sigmas, const std::vector<uint64_t>& seeds,
                          const SamplerOptions& options, torch::IntArrayRef sample_shape,
                          torch::Dtype dtype = torch::kFloat64);

// Checks the sample mean and covariance of `samples` [N, 2] against the mixture, each within
// `z` standard errors, and (with check_weights) the fraction of samples in each mode (the
// most responsible component) against its weight; the modes must be well separated for that.
void expect_mixture_moments(const GaussianMixture& mixture, const torch::Tensor& samples,
                            const std::string& label, double z = 4.0, bool check_weights = true);

// The mixture seen at noise level σ: each variance s_k² + σ².
GaussianMixture smoothed_mixture(GaussianMixture mixture, double sigma);

}  // namespace diffuse::test
