#include "diffuse/sampling/invert.h"

#include <algorithm>

#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/inverse/metrics.h"
#include "diffuse/sampling/generate.h"
#include "sampling/sample_labels.h"

namespace diffuse {
namespace {

const SamplerEntry& find_ode_sampler(const std::string& name) {
  const auto& entry = find_sampler(name);
  if (!entry.ode)
    throw ConfigError("sampler '" + name + "' does not solve the probability-flow ODE, so it cannot be run "
                      "backwards; inversion takes one of: " +
                      sampler_names([](const SamplerEntry& e) { return e.ode; }));
  return entry;
}

// Deterministic steps draw no noise; the samplers still want one stream per sample.
SeededNoise unused_noise(int64_t batch, const torch::Device& device) {
  std::vector<uint64_t> seeds(static_cast<size_t>(batch));
  for (size_t k = 0; k < seeds.size(); ++k) seeds[k] = k;
  return SeededNoise(seeds, device);
}

void check_inversion_inputs(DiffusionNet& net, const torch::Tensor& images, const InvertOptions& options) {
  if (options.batch_size < 1) throw ConfigError("inversion: batch size must be >= 1");
  const auto& net_options = net.options();
  const std::vector<int64_t> expected{net_options.in_channels, net_options.image_size, net_options.image_size};
  if (images.dim() != 4 || images.size(0) < 1 || images.sizes().slice(1) != torch::IntArrayRef(expected))
    throw DataError("inversion: the images must be [N, " + std::to_string(expected[0]) + ", " +
                    std::to_string(expected[1]) + ", " + std::to_string(expected[2]) +
                    "] with N >= 1 for this model, found " + shape_text(images.sizes()));
  const bool conditional = net_options.num_classes > 0;
  if (!conditional && !options.labels.empty())
    throw ConfigError("inversion: class labels given, but the model is unconditional");
  if (options.cfg != 1.0 && (!conditional || options.labels.empty()))
    throw ConfigError("inversion: guidance (cfg " + format_double(options.cfg) + ") needs " +
                      (conditional ? "class labels for the images" : "a class-conditional model"));
  check_sample_labels(options.labels, net_options.num_classes, "model");
}

// Labels of images [begin, end): the given ones cycled, else the null class of a conditional
// model, else none.
torch::Tensor inversion_labels(DiffusionNet& net, const InvertOptions& options, int64_t begin, int64_t end,
                               const torch::Device& device) {
  const auto& net_options = net.options();
  if (net_options.num_classes == 0) return {};
  return options.labels.empty() ? torch::full({end - begin}, net.null_label(), torch::TensorOptions(torch::kLong).device(device))
                                : sample_labels(options.labels, net_options.num_classes, begin, end, device);
}

}  // namespace

torch::Tensor invert_ode(const std::string& sampler, const Denoiser& denoiser, const torch::Tensor& x,
                         const std::vector<double>& sigmas, const SamplerOptions& options,
                         const SamplerCallback& progress) {
  const auto& entry = find_ode_sampler(sampler);
  if (sigmas.size() >= 2 && !(sigmas[1] > sigmas[0]))
    throw ConfigError("inversion: the sigma list must increase (from the data towards the noise), found " +
                      format_double(sigmas[0]) + " then " + format_double(sigmas[1]));
  auto noise = unused_noise(x.size(0), x.device());
  return entry.fn(denoiser, x, sigmas, noise, options, progress);
}

std::vector<double> inversion_sigmas(const NoiseSchedule& schedule, const std::vector<double>& sampling_sigmas) {
  std::vector<double> path;
  for (auto it = sampling_sigmas.rbegin(); it != sampling_sigmas.rend(); ++it)
    if (*it > 0.0) path.push_back(*it);
  if (path.empty()) throw ConfigError("inversion: the sampling grid holds no sigma > 0");
  if (schedule.sigma_min() < path.front()) path.insert(path.begin(), schedule.sigma_min());
  return path;
}

Inversion invert_images(Precond& precond, const torch::Tensor& images, const InvertOptions& options,
                        const SamplerCallback& progress) {
  const auto& entry = find_ode_sampler(options.sampler);
  check_inversion_inputs(precond->net(), images, options);
  GenerateOptions grid;
  grid.sampler = options.sampler;
  grid.steps = options.steps;
  grid.spacing = options.spacing;
  const auto sampling = generation_sigmas(precond->schedule(), grid);
  Inversion result;
  result.sigmas = inversion_sigmas(precond->schedule(), sampling);
  const double sigma_max = result.sigmas.back();

  const int64_t total = images.size(0);
  const int64_t batches = (total + options.batch_size - 1) / options.batch_size;
  // Each batch runs both σ lists; the sampler reports each phase's NFE (heun's differs between
  // a list ending at 0 and one that does not), learnt from the first batch.
  int64_t inversion_nfe = 0, sampling_nfe = entry.nfe(static_cast<int64_t>(sampling.size()) - 1, options.sampler_options);
  int64_t nfe_before = 0;
  auto phase_progress = [&](bool inverting) -> SamplerCallback {
    if (!progress) return {};
    return [&, inverting](const SamplerStep& step) {
      if (inverting) inversion_nfe = step.nfe_total;
      progress(within_run(step, nfe_before, batches * (inversion_nfe + sampling_nfe)));
    };
  };

  const auto device = precond->device();
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> noise_out, reconstructions;
  for (int64_t begin = 0; begin < total; begin += options.batch_size) {
    const int64_t end = std::min(total, begin + options.batch_size);
    const auto x0 = images.slice(0, begin, end).to(device, torch::kFloat32);
    const Denoiser denoiser =
        make_model_denoiser(precond, inversion_labels(precond->net(), options, begin, end, device), options.cfg);
    const auto latent = invert_ode(options.sampler, denoiser, x0, result.sigmas, options.sampler_options,
                                   phase_progress(true));
    nfe_before += inversion_nfe;
    auto noise = unused_noise(end - begin, device);
    const auto back = entry.fn(denoiser, latent, sampling, noise, options.sampler_options, phase_progress(false));
    nfe_before += sampling_nfe;
    noise_out.push_back((latent / sigma_max).to(torch::kCPU, torch::kFloat32));
    reconstructions.push_back(back.to(torch::kCPU, torch::kFloat32));
  }
  result.noise = torch::cat(noise_out);
  result.reconstructions = torch::cat(reconstructions);
  result.psnr = psnr(result.reconstructions, images.to(torch::kCPU, torch::kFloat32));
  return result;
}

}  // namespace diffuse
