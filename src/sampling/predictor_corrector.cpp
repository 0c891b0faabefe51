#include "diffuse/sampling/predictor_corrector.h"

#include "diffuse/core/error.h"
#include "diffuse/sampling/langevin.h"
#include "diffuse/sampling/sampler_common.h"

namespace diffuse {
namespace {

const SamplerEntry& find_predictor(const SamplerOptions& options) {
  const SamplerEntry& entry = find_sampler(options.predictor);
  if (!entry.predicts)
    throw ConfigError("sampler pc: '" + options.predictor + "' cannot be a predictor; valid predictors: " +
                      sampler_names([](const SamplerEntry& e) { return e.predicts; }));
  return entry;
}

}  // namespace

int64_t pc_nfe(int64_t steps, const SamplerOptions& options) {
  return find_predictor(options).nfe(steps, options) + options.corrector_steps * (steps - 1);
}

torch::Tensor sample_pc(const Denoiser& denoiser, torch::Tensor x,
                        const std::vector<double>& sigmas, SeededNoise& noise,
                        const SamplerOptions& options, const SamplerCallback& progress) {
  check_sampler_inputs("pc", x, sigmas, noise);
  const SamplerEntry& predictor = find_predictor(options);
  if (options.corrector_steps < 0)
    throw ConfigError("sampler pc: corrector_steps must be >= 0, found " + std::to_string(options.corrector_steps));
  if (!(options.snr > 0)) throw ConfigError("sampler pc: snr must be > 0, found " + format_double(options.snr));
  SamplerOptions with_corrector = options;
  const int steps = options.corrector_steps;
  const double snr = options.snr;
  with_corrector.corrector = [steps, snr](const torch::Tensor& x_step, double sigma,
                                          SamplerDenoiser& denoise, SeededNoise& step_noise) {
    return langevin_correct(x_step, sigma, steps, snr, denoise, step_noise);
  };
  // The predictor counts the corrector's evaluations too; report them against the PC total.
  const int64_t total = predictor.nfe(static_cast<int64_t>(sigmas.size()) - 1, options) +
                  steps * static_cast<int64_t>(sigmas.size() - (sigmas.back() == 0.0 ? 2 : 1));
  SamplerCallback pc_progress;
  if (progress)
    pc_progress = [&progress, total](const SamplerStep& step) { progress(within_run(step, 0, total)); };
  return predictor.fn(denoiser, std::move(x), sigmas, noise, with_corrector, pc_progress);
}

}  // namespace diffuse
