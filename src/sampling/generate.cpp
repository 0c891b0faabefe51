#include "diffuse/sampling/generate.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/cuda_graph.h"
#include "diffuse/core/compat.h"
#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "sampling/sample_labels.h"

namespace diffuse {

std::vector<double> generation_sigmas(const NoiseSchedule& schedule, const GenerateOptions& options) {
  const auto& entry = find_sampler(options.sampler);
  if (entry.grid == SamplerGrid::vp_training) {
    if (!schedule.is_vp())
      throw ConfigError(std::string("sampler '") + entry.name + "' walks the discrete VP grid; this model uses the " +
                        enum_name(schedule.kind(), kScheduleKindNames) +
                        " schedule (use heun, euler, dpmpp2m, ddim or sde_ve)");
    return vp_sigmas(schedule, schedule.timesteps(), TimestepSpacing::leading);
  }
  return sampling_sigmas(schedule, options.steps, options.spacing);
}

namespace {

// The denoiser with its call captured in a CUDA graph on first use (after one eager call,
// which initialises cuDNN/cuBLAS outside the capture); later calls copy x and σ into the
// graph's inputs and replay. One graph per batch: the labels are part of it. The auxiliary
// outputs are captured with x̂0.
Denoiser make_graphed_denoiser(Denoiser inner, const torch::Device& device) {
  struct State {
    State(Denoiser f, const torch::Device& d) : inner(std::move(f)), graph(d, "--cuda-graph") {}
    Denoiser inner;
    CudaGraph graph;
    torch::Tensor x, sigma;
    DenoiserOutput out;
  };
  auto state = std::make_shared<State>(std::move(inner), device);
  return [state](const torch::Tensor& x, const torch::Tensor& sigma) {
    auto& s = *state;
    if (!s.graph.captured()) {
      s.x = x.clone();
      s.sigma = sigma.clone();
      s.inner.evaluate(s.x, s.sigma);
      s.graph.capture([&s] { s.out = s.inner.evaluate(s.x, s.sigma); });
    } else {
      copy_graph_input(s.x, x, "--cuda-graph: the sample batch");
      copy_graph_input(s.sigma, sigma, "--cuda-graph: the noise levels");
    }
    s.graph.replay();
    const auto& variance = s.out.reverse_log_variance;
    return DenoiserOutput{s.out.denoised.clone(), variance.defined() ? variance.clone() : variance};
  };
}

// Throws ConfigError for options the model cannot honour; returns the class count labels index
// (the model's, or the classifier's for an unconditional model; 0 = no labels).
int64_t check_generate_options(const ModelOptions& net_options, const GenerateOptions& options) {
  if (options.seeds.empty()) throw ConfigError("no seeds to sample");
  if (options.batch_size < 1) throw ConfigError("batch size must be >= 1");
  const bool conditional = net_options.num_classes > 0;
  const bool guided = static_cast<bool>(options.classifier);
  if (!conditional && !guided && !options.labels.empty())
    throw ConfigError("class labels given, but the model is unconditional");
  if (guided && conditional && options.classifier_classes != net_options.num_classes)
    throw ConfigError("the classifier has " + std::to_string(options.classifier_classes) +
                      " classes but the model " + std::to_string(net_options.num_classes));
  const int64_t classes = conditional ? net_options.num_classes : options.classifier_classes;
  check_sample_labels(options.labels, classes, conditional ? "model" : "classifier");
  if (options.cfg != 1.0 && !conditional)
    throw ConfigError("classifier-free guidance (cfg " + format_double(options.cfg) +
                      ") needs a class-conditional model; this checkpoint is unconditional");
  return classes;
}

// The denoiser of one batch: the model's (with CFG), classifier-guided, graphed as asked.
Denoiser batch_denoiser(Precond& precond, const GenerateOptions& options, const torch::Tensor& labels,
                        bool reverse_variance) {
  const bool conditional = precond->net().options().num_classes > 0;
  Denoiser denoiser = make_model_denoiser(precond, conditional ? labels : torch::Tensor(),
                                          conditional ? options.cfg : 1.0, reverse_variance);
  if (options.classifier)
    denoiser = make_classifier_guided_denoiser(denoiser, options.classifier, labels, options.classifier_scale);
  if (options.cuda_graph) denoiser = make_graphed_denoiser(std::move(denoiser), precond->device());
  return denoiser;
}

}  // namespace

GenerateResult generate(Precond& precond, const GenerateOptions& options, const SamplerCallback& progress) {
  const auto& entry = find_sampler(options.sampler);
  const auto& net_options = precond->net().options();
  const int64_t classes = check_generate_options(net_options, options);
  const auto device = precond->device();
  if (options.cuda_graph) CudaGraph::check_usable(device, "--cuda-graph");

  GenerateResult result;
  result.sigmas = generation_sigmas(precond->schedule(), options);
  // Only a sampler that walks the training grid step by step, where the learned β–β̃
  // interpolation is defined, uses the learned variance; others use the model's mean alone.
  const bool reverse_variance = net_options.learn_sigma && entry.learned_variance;
  const int64_t total = static_cast<int64_t>(options.seeds.size());
  const int64_t steps = static_cast<int64_t>(result.sigmas.size()) - 1;
  const int64_t batches = (total + options.batch_size - 1) / options.batch_size;
  result.nfe_per_batch = entry.nfe(steps, options.sampler_options);
  result.nfe = result.nfe_per_batch * batches;
  const std::vector<int64_t> shape{net_options.in_channels, net_options.image_size, net_options.image_size};
  SamplerOptions sampler_options = options.sampler_options;
  sampler_options.consistency_sigma_min = precond->consistency_sigma_min().value_or(0.0);

  torch::NoGradGuard no_grad;
  compat::CudaAutocastGuard autocast(options.bf16 && device.is_cuda());
  std::vector<torch::Tensor> outputs;
  for (int64_t begin = 0, batch = 0; begin < total; begin += options.batch_size, ++batch) {
    const int64_t end = std::min(total, begin + options.batch_size);
    SeededNoise noise(std::vector<uint64_t>(options.seeds.begin() + begin, options.seeds.begin() + end), device);
    const torch::Tensor labels = classes > 0 ? sample_labels(options.labels, classes, begin, end, device) : torch::Tensor();
    const Denoiser denoiser = batch_denoiser(precond, options, labels, reverse_variance);
    auto x = noise.randn(shape) * result.sigmas.front();
    const int64_t nfe_before = result.nfe_per_batch * batch;
    SamplerCallback batch_progress;
    if (progress)
      batch_progress = [&](const SamplerStep& step) { progress(within_run(step, nfe_before, result.nfe)); };
    auto out = entry.fn(denoiser, x, result.sigmas, noise, sampler_options, batch_progress);
    outputs.push_back(out.to(torch::kCPU, torch::kFloat32));
  }
  result.images = torch::cat(outputs);
  return result;
}

torch::Tensor generate_samples(Precond& precond, const GenerateOptions& options, const SamplerCallback& progress) {
  return generate(precond, options, progress).images;
}

}  // namespace diffuse
