#include "diffuse/sampling/sampler_common.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "diffuse/core/error.h"

namespace diffuse {

torch::Tensor to_d(const torch::Tensor& x, double sigma, const torch::Tensor& denoised) {
  return (x - denoised) / sigma;
}

AncestralSigmas ancestral_sigmas(double sigma, double sigma_next, double eta) {
  if (sigma_next <= 0.0 || eta <= 0.0) return {sigma_next, 0.0};
  const double up = std::min(
      sigma_next,
      eta * std::sqrt(sigma_next * sigma_next * (sigma * sigma - sigma_next * sigma_next) / (sigma * sigma)));
  return {std::sqrt(std::max(sigma_next * sigma_next - up * up, 0.0)), up};
}

torch::Tensor ancestral_step(const torch::Tensor& x, double sigma, double sigma_next,
                             const torch::Tensor& denoised, double eta, SeededNoise& noise,
                             double noise_scale) {
  const AncestralSigmas s = ancestral_sigmas(sigma, sigma_next, eta);
  auto x_next = x + to_d(x, sigma, denoised) * (s.down - sigma);
  if (s.up > 0.0) x_next = x_next + noise.randn_like(x) * (s.up * noise_scale);
  return x_next;
}

torch::Tensor langevin_step(const torch::Tensor& x, double sigma, const torch::Tensor& denoised,
                            const torch::Tensor& alpha, const torch::Tensor& z) {
  const auto score = (denoised - x) / (sigma * sigma);
  return x + 0.5 * alpha * score + alpha.sqrt() * z;
}

torch::Tensor sigma_batch(const torch::Tensor& x, double sigma) {
  const auto dtype = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  return torch::full({x.size(0)}, sigma, x.options().dtype(dtype));
}

namespace {

// `increasing`: the list runs the ODE backwards (inversion), every σ > 0; otherwise it
// decreases and only the last σ may be 0.
void check_sigma_list(const std::string& who, const std::vector<double>& sigmas, bool increasing) {
  if (sigmas.size() < 2)
    throw ConfigError(who + "needs at least 2 sigma values (1 step), found " +
                      std::to_string(sigmas.size()));
  for (size_t i = 0; i < sigmas.size(); ++i) {
    const bool may_be_zero = !increasing && i + 1 == sigmas.size();
    if (!std::isfinite(sigmas[i]) || sigmas[i] < 0.0 || (!may_be_zero && sigmas[i] == 0.0))
      throw ConfigError(who + "sigma[" + std::to_string(i) + "] = " + std::to_string(sigmas[i]) +
                        (increasing ? " must be finite and > 0" : " must be finite and > 0 (only the last may be 0)"));
    if (i > 0 && !(increasing ? sigmas[i] > sigmas[i - 1] : sigmas[i] < sigmas[i - 1]))
      throw ConfigError(who + "sigmas must " + (increasing ? "increase" : "decrease") + " strictly, found sigma[" +
                        std::to_string(i) + "] = " + std::to_string(sigmas[i]) + " after " +
                        std::to_string(sigmas[i - 1]));
  }
}

void check_batch(const std::string& who, const torch::Tensor& x, const SeededNoise& noise) {
  if (x.dim() < 1 || x.size(0) != noise.batch_size())
    throw Error(who + "x has batch " + (x.dim() < 1 ? std::string("(scalar)") : std::to_string(x.size(0))) +
                " but the noise has " + std::to_string(noise.batch_size()) + " seeds");
}

}  // namespace

void check_sampler_inputs(const char* sampler, const torch::Tensor& x,
                          const std::vector<double>& sigmas, const SeededNoise& noise) {
  const std::string who = std::string("sampler ") + sampler + ": ";
  check_sigma_list(who, sigmas, false);
  check_batch(who, x, noise);
}

void check_ode_sampler_inputs(const char* sampler, const torch::Tensor& x, const std::vector<double>& sigmas,
                              const SeededNoise& noise, bool deterministic) {
  const std::string who = std::string("sampler ") + sampler + ": ";
  const bool increasing = sigmas.size() >= 2 && sigmas[1] > sigmas[0];
  if (increasing && !deterministic)
    throw ConfigError(who + "an increasing sigma list runs the ODE backwards (inversion), which needs the "
                            "deterministic step: eta 0 for ddim, s_churn 0 for heun");
  check_sigma_list(who, sigmas, increasing);
  check_batch(who, x, noise);
}

torch::Tensor clamp_denoised(const torch::Tensor& denoised, double clip) {
  return clip > 0.0 ? denoised.clamp(-clip, clip) : denoised;
}

SamplerDenoiser::SamplerDenoiser(const Denoiser& denoiser, const SamplerOptions& options,
                                 const SamplerCallback& callback, int64_t nfe_total)
    : denoiser_(denoiser), options_(options), callback_(callback), nfe_total_(nfe_total) {}

DenoiserOutput SamplerDenoiser::evaluate(const torch::Tensor& x, double sigma) {
  auto out = denoiser_.evaluate(x, sigma_batch(x, sigma));
  out.denoised = clamp_denoised(out.denoised, options_.clip_denoised);
  ++nfe_done_;
  if (callback_) callback_({step_, sigma, x, out.denoised, nfe_done_, nfe_total_});
  return out;
}

torch::Tensor SamplerDenoiser::correct(const torch::Tensor& x, double sigma, SeededNoise& noise) {
  auto corrected = options_.corrector && sigma > 0.0 ? options_.corrector(x, sigma, *this, noise) : x;
  end_step();
  return corrected;
}

}  // namespace diffuse
