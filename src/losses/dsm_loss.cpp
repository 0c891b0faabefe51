#include "diffuse/losses/dsm_loss.h"

#include <cmath>

#include "diffuse/core/device_copy.h"
#include "diffuse/core/error.h"
#include "diffuse/losses/vlb_loss.h"

namespace diffuse {

torch::Tensor loss_weight(LossWeighting weighting, const torch::Tensor& sigma,
                          const torch::Tensor& c_out, const DiffusionOptions& options) {
  const auto s = sigma.to(torch::kFloat32).view({-1});
  const auto c_out_sq = c_out.to(torch::kFloat32).view({-1}).square();
  switch (weighting) {
    case LossWeighting::uniform: return torch::ones_like(s);
    case LossWeighting::min_snr: {
      const auto snr = 1.0 / (s * s);
      return snr.clamp_max(options.min_snr_gamma) * c_out_sq;
    }
    case LossWeighting::edm: {
      const double sd = options.sigma_data;
      const auto lambda = (s * s + sd * sd) / ((s * sd) * (s * sd));
      return lambda * c_out_sq;
    }
  }
  throw std::logic_error("loss_weight: unhandled weighting");
}

TrainingDrawDistribution::TrainingDrawDistribution(const DiffusionOptions& options,
                                                   const NoiseSchedule& schedule)
    : options_(options) {
  if (options.sigma_distribution == SigmaDistribution::grid) {
    if (!schedule.is_vp())
      throw ConfigError("diffusion.sigma_distribution 'grid' needs a VP schedule");
    grid_sigmas_ = torch::tensor(schedule.sigmas(), torch::kFloat64).to(torch::kFloat32);
  }
}

torch::Tensor TrainingDrawDistribution::sample_sigma(int64_t batch, torch::Generator& gen,
                                                     torch::Device device,
                                                     torch::Tensor* timesteps) const {
  torch::Tensor sigma;
  switch (options_.sigma_distribution) {
    case SigmaDistribution::grid: {
      auto t = torch::randint(grid_sigmas_.size(0), {batch}, gen, torch::kLong);
      if (timesteps) *timesteps = copy_to_device(t, device);
      return copy_to_device(grid_sigmas_.index_select(0, t), device);
    }
    case SigmaDistribution::log_normal:
      sigma = (torch::randn({batch}, gen, torch::kFloat32) * options_.p_std + options_.p_mean).exp();
      break;
    case SigmaDistribution::log_uniform: {
      const double lo = std::log(options_.sigma_min), hi = std::log(options_.sigma_max);
      sigma = (lo + (hi - lo) * torch::rand({batch}, gen, torch::kFloat64)).exp().to(torch::kFloat32);
      break;
    }
    case SigmaDistribution::uniform_t: {
      const double lo = NoiseSchedule::flow_t_from_sigma(options_.sigma_min);
      const double hi = NoiseSchedule::flow_t_from_sigma(options_.sigma_max);
      const auto t = lo + (hi - lo) * torch::rand({batch}, gen, torch::kFloat64);
      sigma = (t / (1.0 - t)).to(torch::kFloat32);
      break;
    }
  }
  return copy_to_device(sigma * options_.shift, device);
}

torch::Tensor TrainingDrawDistribution::drop_labels(const torch::Tensor& labels, int64_t null_label,
                                                    torch::Generator& gen,
                                                    const BatchShard& shard) const {
  if (!labels.defined() || options_.p_uncond <= 0.0 || null_label < 0) return labels;
  const int64_t batch = labels.size(0);
  const int64_t global = shard.global > 0 ? shard.global : batch;
  const auto drop = (torch::rand({global}, gen, torch::kFloat32) < options_.p_uncond).narrow(0, shard.offset, batch);
  return torch::where(copy_to_device(drop, labels.device()), torch::full_like(labels, null_label), labels);
}

TrainingDraw TrainingDrawDistribution::draw(const torch::Tensor& x0, const torch::Tensor& labels,
                                            int64_t null_label, torch::Generator& gen,
                                            const BatchShard& shard) const {
  const int64_t batch = x0.size(0);
  const int64_t global = shard.global > 0 ? shard.global : batch;
  if (shard.offset < 0 || shard.offset + batch > global)
    throw std::invalid_argument(
        "TrainingDrawDistribution::draw: rows [" + std::to_string(shard.offset) + ", " +
        std::to_string(shard.offset + batch) + ") outside a batch of " + std::to_string(global));
  auto rows = [&](const torch::Tensor& t) { return global == batch ? t : t.narrow(0, shard.offset, batch); };
  TrainingDraw d;
  d.sigma = rows(sample_sigma(global, gen, x0.device(), &d.timesteps));
  if (d.timesteps.defined()) d.timesteps = rows(d.timesteps);
  d.labels = drop_labels(labels, null_label, gen, {shard.offset, global});
  auto shape = x0.sizes().vec();
  shape[0] = global;
  d.noise = copy_to_device(rows(torch::randn(shape, gen, torch::kFloat32)).contiguous(), x0.device());
  return d;
}

LossOutput dsm_loss(Precond& precond, const torch::Tensor& x0, const torch::Tensor& labels,
                    const TrainingDrawDistribution& draws, const DiffusionOptions& options,
                    torch::Generator& gen) {
  return dsm_loss(precond, x0, draws.draw(x0, labels, precond->net().null_label(), gen), options);
}

LossOutput dsm_loss(Precond& precond, const torch::Tensor& x0, const TrainingDraw& draw,
                    const DiffusionOptions& options) {
  const auto& sigma = draw.sigma;
  const auto& timesteps = draw.timesteps;
  const auto& y = draw.labels;
  const auto x = x0 + sigma.view({-1, 1, 1, 1}) * draw.noise;

  const auto sc = compute_scalings(precond->prediction(), sigma, precond->schedule());
  const auto out = precond->forward(x, sigma, y);
  const auto target = (x0 - sc.c_skip * x) / sc.c_out;
  const auto weight = loss_weight(options.weighting, sigma, sc.c_out, options);
  const auto per_sample = weight * (out.net_output.to(torch::kFloat32) - target).square().mean({1, 2, 3});
  auto loss = per_sample.mean();
  if (out.var_interp.defined()) {
    // Hybrid loss L_simple + λ L_vlb (Nichol & Dhariwal 2021 eq. 16) on the VP state
    // x_t = √ᾱ x̃. L_vlb is counted in bits and scaled by T/1000, as in their reference
    // code, so that λ = 0.001 keeps its published meaning.
    if (!timesteps.defined())
      throw ConfigError("model.learn_sigma: the learned variance needs a VP schedule");
    const auto& schedule = precond->schedule();
    const auto alpha_bar = 1.0 / (1.0 + sigma.square());                                 // [B]
    const auto x_t = x * alpha_bar.sqrt().view({-1, 1, 1, 1});                           // [B, C, H, W]
    const auto vlb = vlb_loss(schedule.betas(), schedule.alphas_cumprod(), timesteps, x_t, x0,
                              out.denoised.detach(), out.var_interp.to(torch::kFloat32));  // [B]
    const double scale = options.vlb_weight / std::log(2.0) * schedule.timesteps() / 1000.0;
    loss = loss + scale * vlb.mean();
  }
  return LossOutput{loss, per_sample.detach()};
}

}  // namespace diffuse
