#include "diffuse/inverse/restore.h"

#include <algorithm>

#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/inverse/dps.h"
#include "diffuse/inverse/measurement_noise.h"
#include "diffuse/inverse/metrics.h"
#include "diffuse/inverse/operator.h"
#include "diffuse/schedule/sigma_spacing.h"

namespace diffuse {
namespace {

// Measurement noise and the sampler's noise use different streams of the same seed, so the
// degradation of image k never correlates with its restoration noise.
constexpr uint64_t kMeasurementStream = 0x6d6561737572656dULL;  // "measurem"

// The guided denoiser for a task's class/cfg settings (DESIGN §2: CFG is a wrapper).
DenoiserFn task_denoiser(Precond& precond, const RestoreTask& task, int64_t batch, const torch::Device& device) {
  const int64_t classes = precond->net().num_classes();
  if (classes <= 0) {
    if (task.class_label >= 0)
      throw ConfigError("task class " + std::to_string(task.class_label) +
                        ": the model is unconditional; leave class at -1");
    return make_denoiser(precond, torch::Tensor());
  }
  if (task.class_label >= classes)
    throw ConfigError("task class " + std::to_string(task.class_label) + " is out of range: the model has " +
                      std::to_string(classes) + " classes (0-" + std::to_string(classes - 1) + ")");
  // Unconditional restoration with a conditional model uses its null-label branch.
  const int64_t label = task.class_label < 0 ? precond->net().null_label() : task.class_label;
  const auto labels = torch::full({batch}, label, torch::dtype(torch::kLong).device(device));
  return task.class_label < 0 || task.cfg == 1.0 ? make_denoiser(precond, labels)
                                                 : make_cfg_denoiser(precond, labels, task.cfg);
}

RestoreQuality measure(const torch::Tensor& image, const torch::Tensor& clean) {
  RestoreQuality q{psnr(image, clean), torch::Tensor()};
  if (clean.size(2) >= 11 && clean.size(3) >= 11) q.ssim = ssim(image, clean);
  return q;
}

// y for every image: the real measurements conformed to the operator, or the clean images
// degraded with per-image measurement noise.
torch::Tensor measurements(const Operator& op, const RestoreRequest& request, int64_t n) {
  if (request.measurement.defined()) {
    const auto expected = op.measurement_shape();
    if (request.measurement.dim() < 1 || request.measurement.sizes().slice(1) != torch::IntArrayRef(expected))
      throw DataError("restore: a '" + op.name() + "' measurement is " + shape_text(expected) + " per image, found " +
                      shape_text(request.measurement.sizes()));
    return op.conform_measurement(request.measurement.to(torch::kFloat32));
  }
  std::vector<uint64_t> measurement_seeds;
  for (size_t k = 0; k < static_cast<size_t>(n); ++k)
    measurement_seeds.push_back(derived_seed(request.seeds[k], kMeasurementStream));
  SeededNoise measurement_noise(measurement_seeds, torch::kCPU);
  torch::NoGradGuard no_grad;
  return add_measurement_noise(op.forward(request.clean), request.task.noise, measurement_noise);
}

void check_request(const RestoreRequest& request, const std::vector<int64_t>& image_shape) {
  if (request.clean.defined() == request.measurement.defined())
    throw ConfigError("restore: give exactly one of clean images and measurements");
  if (request.batch_size < 1) throw ConfigError("restore: batch size must be >= 1");
  const auto& images = request.clean.defined() ? request.clean : request.measurement;
  if (images.dim() < 1 || images.size(0) < 1) throw DataError("restore: no images to restore");
  if (request.clean.defined() && request.clean.sizes().slice(1) != torch::IntArrayRef(image_shape))
    throw DataError("restore: the clean images must be [N, " + shape_text(image_shape).substr(1) + " for this model, found " +
                    shape_text(request.clean.sizes()));
  if (static_cast<int64_t>(request.seeds.size()) != images.size(0))
    throw ConfigError("restore: one seed per image (" + std::to_string(images.size(0)) + "), found " +
                      std::to_string(request.seeds.size()));
}

}  // namespace

torch::Tensor naive_estimate(const torch::Tensor& y, int64_t image_size) {
  if (y.size(-1) == image_size) return y;
  namespace F = torch::nn::functional;
  return F::interpolate(y, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{image_size, image_size})
                               .mode(torch::kBilinear)
                               .align_corners(false));
}

torch::Tensor display_measurement(const torch::Tensor& y, int64_t image_size) {
  const int64_t factor = image_size / y.size(-1);
  return factor == 1 ? y : y.repeat_interleave(factor, 2).repeat_interleave(factor, 3);
}

RestoreResult restore(Precond& precond, const RestoreRequest& request, const SamplerCallback& progress) {
  const auto& net = precond->net().options();
  const std::vector<int64_t> image_shape{net.in_channels, net.image_size, net.image_size};
  check_request(request, image_shape);
  const auto op = make_operator(request.task.op, net.in_channels, net.image_size);
  const auto device = precond->device();
  const int64_t n = request.clean.defined() ? request.clean.size(0) : request.measurement.size(0);
  RestoreResult result;
  result.operator_name = op->name();
  result.measurement = measurements(*op, request, n);
  result.sigmas = sampling_sigmas(precond->schedule(), request.task.steps, request.task.spacing);
  result.nfe_per_image = static_cast<int64_t>(result.sigmas.size()) - 1;
  // Gradients are taken with respect to x only; the weights stay fixed.
  for (auto& p : precond->parameters()) p.set_requires_grad(false);

  const int64_t batches = (n + request.batch_size - 1) / request.batch_size;
  std::vector<torch::Tensor> outputs;
  for (int64_t begin = 0, batch = 0; begin < n; begin += request.batch_size, ++batch) {
    const int64_t end = std::min(n, begin + request.batch_size);
    SeededNoise noise(std::vector<uint64_t>(request.seeds.begin() + begin, request.seeds.begin() + end), device);
    const auto denoiser = task_denoiser(precond, request.task, end - begin, device);
    auto x = noise.randn(image_shape) * result.sigmas.front();
    SamplerCallback batch_progress;
    if (progress)
      batch_progress = [&](const SamplerStep& step) {
        progress(within_run(step, batch * result.nfe_per_image, batches * result.nfe_per_image));
      };
    const auto restored = sample_dps(denoiser, *op, result.measurement.slice(0, begin, end).to(device), x,
                                     result.sigmas, noise, request.task.dps, batch_progress);
    outputs.push_back(restored.to(torch::kCPU, torch::kFloat32));
  }
  result.restored = torch::cat(outputs);
  result.measurement = result.measurement.to(torch::kCPU, torch::kFloat32);
  if (request.clean.defined()) {
    const auto clean = request.clean.to(torch::kCPU, torch::kFloat32);
    result.has_quality = true;
    result.quality = measure(result.restored, clean);
    result.naive_quality = measure(naive_estimate(result.measurement, net.image_size), clean);
    result.naive_name = result.measurement.size(-1) != net.image_size ? "bilinear-upsampled measurement" : "measurement";
  }
  return result;
}

}  // namespace diffuse
