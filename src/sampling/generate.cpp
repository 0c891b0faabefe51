#include "diffuse/sampling/generate.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/cuda_graph.h"
#include "diffuse/core/compat.h"
#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/losses/vlb_loss.h"
#include "sampling/sample_labels.h"

namespace diffuse {

std::vector<double> generation_sigmas(const NoiseSchedule& schedule, const GenerateOptions& options) {
  if (options.sampler == "ddpm") {
    if (!schedule.is_vp())
      throw ConfigError(std::string("sampler 'ddpm' walks the discrete VP grid; this model uses the ") +
                        enum_name(schedule.kind(), kScheduleKindNames) +
                        " schedule (use heun, euler, dpmpp2m, ddim or sde_ve)");
    return vp_sigmas(schedule, schedule.timesteps(), TimestepSpacing::leading);
  }
  return sampling_sigmas(schedule, options.steps, options.spacing);
}

namespace {

// DDPM's step noise from the model's learned variance (Nichol & Dhariwal 2021 eq. 15), in
// σ-space: x̃_{t-1} = x_{t-1}/√ᾱ_{t-1}, so the VP std √Σ_θ becomes √(Σ_θ (1 + σ'²)).
// `last_var_interp` holds the variance channels of the denoiser call at σ.
std::function<torch::Tensor(double, double)> learned_ddpm_step_std(
    const NoiseSchedule& schedule, std::shared_ptr<torch::Tensor> last_var_interp) {
  return [schedule, last_var_interp](double sigma, double sigma_next) {
    const auto& var_interp = *last_var_interp;
    if (!var_interp.defined())
      throw Error("learned-variance DDPM: the denoiser returned no variance channels");
    const auto t = torch::full({var_interp.size(0)}, static_cast<int64_t>(std::llround(schedule.t_from_sigma(sigma))),
                               torch::TensorOptions(torch::kLong).device(var_interp.device()));
    const auto log_variance = learned_posterior_log_variance(
        schedule.betas(), schedule.alphas_cumprod(), t, var_interp.to(torch::kFloat32));
    return (0.5 * log_variance).exp() * std::sqrt(1.0 + sigma_next * sigma_next);
  };
}

// The denoiser with its call captured in a CUDA graph on first use (after one eager call,
// which initialises cuDNN/cuBLAS outside the capture); later calls copy x and σ into the
// graph's inputs and replay. One graph per batch: the labels are part of it.
DenoiserFn make_graphed_denoiser(DenoiserFn inner, const torch::Device& device) {
  struct State {
    State(DenoiserFn f, const torch::Device& d) : inner(std::move(f)), graph(d, "--cuda-graph") {}
    DenoiserFn inner;
    CudaGraph graph;
    torch::Tensor x, sigma, out;
  };
  auto state = std::make_shared<State>(std::move(inner), device);
  return [state](const torch::Tensor& x, const torch::Tensor& sigma) {
    auto& s = *state;
    if (!s.graph.captured()) {
      s.x = x.clone();
      s.sigma = sigma.clone();
      s.inner(s.x, s.sigma);
      s.graph.capture([&s] { s.out = s.inner(s.x, s.sigma); });
    } else {
      copy_graph_input(s.x, x, "--cuda-graph: the sample batch");
      copy_graph_input(s.sigma, sigma, "--cuda-graph: the noise levels");
    }
    s.graph.replay();
    return s.out.clone();
  };
}

}  // namespace

torch::Tensor generate_samples(Precond& precond, const GenerateOptions& options,
                               const SamplerProgress& progress) {
  const auto& entry = find_sampler(options.sampler);
  if (options.seeds.empty()) throw ConfigError("no seeds to sample");
  if (options.batch_size < 1) throw ConfigError("batch size must be >= 1");
  const auto& net_options = precond->net().options();
  const bool conditional = net_options.num_classes > 0;
  const bool guided = static_cast<bool>(options.classifier);
  if (!conditional && !guided && !options.labels.empty())
    throw ConfigError("class labels given, but the model is unconditional");
  if (guided && conditional && options.classifier_classes != net_options.num_classes)
    throw ConfigError("the classifier has " + std::to_string(options.classifier_classes) +
                      " classes but the model " + std::to_string(net_options.num_classes));
  // Labels index the model's classes, or the classifier's for an unconditional model.
  const int64_t classes = conditional ? net_options.num_classes : options.classifier_classes;
  check_sample_labels(options.labels, classes, conditional ? "model" : "classifier");
  if (options.cfg != 1.0 && !conditional)
    throw ConfigError("classifier-free guidance (cfg " + format_double(options.cfg) +
                      ") needs a class-conditional model; this checkpoint is unconditional");

  const auto sigmas = generation_sigmas(precond->schedule(), options);
  // Only DDPM walks the training grid step by step, where the learned β–β̃ interpolation is
  // defined; other samplers use the model's mean alone.
  const bool learned_variance = net_options.learn_sigma && options.sampler == "ddpm";
  const auto device = precond->device();
  if (options.cuda_graph) {
    CudaGraph::check_usable(device, "--cuda-graph");
    if (learned_variance)
      throw ConfigError("--cuda-graph: the learned-variance DDPM step reads the network's variance "
                        "outside the denoiser call; sample without --cuda-graph or with another sampler");
  }
  const int64_t total = static_cast<int64_t>(options.seeds.size());
  const int64_t steps = static_cast<int64_t>(sigmas.size()) - 1;
  const int64_t batches = (total + options.batch_size - 1) / options.batch_size;
  const int64_t nfe_total = entry.nfe(steps, options.sampler_options) * batches;
  const std::vector<int64_t> shape{net_options.in_channels, net_options.image_size, net_options.image_size};

  torch::NoGradGuard no_grad;
  compat::CudaAutocastGuard autocast(options.bf16 && device.is_cuda());
  std::vector<torch::Tensor> outputs;
  for (int64_t begin = 0, batch = 0; begin < total; begin += options.batch_size, ++batch) {
    const int64_t end = std::min(total, begin + options.batch_size);
    std::vector<uint64_t> seeds(options.seeds.begin() + begin, options.seeds.begin() + end);
    SeededNoise noise(seeds, device);
    torch::Tensor labels;
    if (classes > 0) labels = sample_labels(options.labels, classes, begin, end, device);
    auto last_var_interp = std::make_shared<torch::Tensor>();
    DenoiserFn denoiser = make_variance_tapping_denoiser(
        precond, conditional ? labels : torch::Tensor(), conditional ? options.cfg : 1.0,
        learned_variance ? last_var_interp : nullptr);
    if (guided)
      denoiser = make_classifier_guided_denoiser(denoiser, options.classifier, labels, options.classifier_scale);
    SamplerOptions sampler_options = options.sampler_options;
    sampler_options.consistency_sigma_min = precond->consistency_sigma_min().value_or(0.0);
    if (learned_variance)
      sampler_options.ddpm_step_std = learned_ddpm_step_std(precond->schedule(), last_var_interp);
    if (options.cuda_graph) denoiser = make_graphed_denoiser(std::move(denoiser), device);
    auto x = noise.randn(shape) * sigmas.front();
    const int64_t nfe_before = entry.nfe(steps, options.sampler_options) * batch;
    SamplerProgress batch_progress;
    if (progress)
      batch_progress = [&](int64_t done, int64_t) { progress(nfe_before + done, nfe_total); };
    auto out = entry.fn(denoiser, x, sigmas, noise, sampler_options, batch_progress);
    outputs.push_back(out.to(torch::kCPU, torch::kFloat32));
  }
  return torch::cat(outputs);
}

}  // namespace diffuse
