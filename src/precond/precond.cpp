#include "diffuse/precond/precond.h"

#include "diffuse/core/error.h"
#include "diffuse/schedule/vp_posterior.h"

namespace diffuse {

Scalings compute_scalings(Prediction prediction, const torch::Tensor& sigma,
                          const NoiseSchedule& schedule) {
  const auto s = sigma.to(torch::kFloat32).view({-1, 1, 1, 1});
  Scalings out;
  // VP types: x_t = √ᾱ x0 + √(1-ᾱ) ε is c_in·x in σ-space (√ᾱ = 1/√(1+σ²)); the network
  // sees the noise input of its schedule (the timestep t(σ) for VP grids). DESIGN §3.
  auto vp_c_in = [&] { return torch::rsqrt(1.0 + s * s); };
  switch (prediction) {
    case Prediction::eps:
      out.c_in = vp_c_in();
      out.c_skip = torch::ones_like(s);
      out.c_out = -s;
      break;
    case Prediction::v:  // x0 = √ᾱ x_t − √(1-ᾱ) v  ⇒  c_skip = 1/(1+σ²), c_out = −σ/√(1+σ²)
      out.c_in = vp_c_in();
      out.c_skip = 1.0 / (1.0 + s * s);
      out.c_out = -s * torch::rsqrt(1.0 + s * s);
      break;
    case Prediction::x0:
      out.c_in = vp_c_in();
      out.c_skip = torch::zeros_like(s);
      out.c_out = torch::ones_like(s);
      break;
    case Prediction::flow:
      // Velocity of the linear interpolant x_t = (1-t) x0 + t ε (Liu et al. 2023 eq. 1,
      // Lipman et al. 2023 eq. 23): v = ε − x0. With t = σ/(1+σ), x_t = x/(1+σ) is c_in·x,
      // and x0 = x_t − t v gives c_skip = 1/(1+σ), c_out = −σ/(1+σ).
      out.c_in = 1.0 / (1.0 + s);
      out.c_skip = 1.0 / (1.0 + s);
      out.c_out = -s / (1.0 + s);
      break;
    case Prediction::edm: {  // Karras et al. 2022, Table 1 ("Ours")
      const double sd = schedule.sigma_data();
      out.c_skip = sd * sd / (s * s + sd * sd);
      out.c_out = s * sd * torch::rsqrt(s * s + sd * sd);
      out.c_in = torch::rsqrt(s * s + sd * sd);
      out.c_noise = sigma.to(torch::kFloat32).log() / 4.0;
      return out;
    }
  }
  out.c_noise = schedule.noise_input(sigma);
  return out;
}

torch::Tensor consistency_output(const torch::Tensor& x, const torch::Tensor& sigma,
                                 const torch::Tensor& denoised, double sigma_min) {
  const auto s = sigma.to(denoised.scalar_type()).view({-1, 1, 1, 1});
  const auto r = ((s - sigma_min) / s).clamp(0.0, 1.0);
  const auto x_same = x.to(denoised.scalar_type());
  return x_same + r * (denoised - x_same);
}

PrecondImpl::PrecondImpl(std::shared_ptr<DiffusionNet> net, Prediction prediction,
                         NoiseSchedule schedule, std::optional<double> consistency_sigma_min)
    : net_(std::move(net)), prediction_(prediction), schedule_(std::move(schedule)),
      consistency_sigma_min_(consistency_sigma_min) {
  register_module("net", net_);
}

torch::Device PrecondImpl::device() const {
  const auto params = parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

PrecondOutput PrecondImpl::forward(const torch::Tensor& x, const torch::Tensor& sigma,
                                   const torch::Tensor& labels) {
  const auto sc = compute_scalings(prediction_, sigma, schedule_);
  auto f = net_->forward(x * sc.c_in.to(x.scalar_type()), sc.c_noise, labels);
  PrecondOutput out;
  const int64_t channels = x.size(1);
  if (net_->learns_sigma()) {
    out.net_output = f.narrow(1, 0, channels);
    out.var_interp = f.narrow(1, channels, channels);
  } else {
    out.net_output = f;
  }
  // D = c_skip x + c_out F, in float32 whatever precision F came out in.
  out.denoised = sc.c_skip * x.to(torch::kFloat32) + sc.c_out * out.net_output.to(torch::kFloat32);
  if (consistency_sigma_min_) out.denoised = consistency_output(x, sigma, out.denoised, *consistency_sigma_min_);
  return out;
}

namespace {

void check_guidance_possible(DiffusionNet& net, const torch::Tensor& labels) {
  if (net.null_label() < 0)
    throw ConfigError("classifier-free guidance needs a class-conditional model with a null "
                      "class; this checkpoint is unconditional (omit --cfg)");
  if (!labels.defined())
    throw ConfigError("classifier-free guidance needs class labels (--class or --classes)");
}

}  // namespace

DenoiserFn make_denoiser(Precond precond, torch::Tensor labels) {
  return make_model_denoiser(std::move(precond), std::move(labels));
}

DenoiserFn make_cfg_denoiser(Precond precond, torch::Tensor labels, double guidance) {
  check_guidance_possible(precond->net(), labels);
  return make_model_denoiser(std::move(precond), std::move(labels), guidance);
}

Denoiser make_model_denoiser(Precond precond, torch::Tensor labels, double guidance, bool reverse_variance) {
  if (reverse_variance && !precond->net().learns_sigma())
    throw ConfigError("the reverse variance was asked of a model that does not learn it (model.learn_sigma false)");
  const auto with_variance = [precond, reverse_variance](DenoiserOutput out, const torch::Tensor& var_interp,
                                                         const torch::Tensor& sigma) {
    if (reverse_variance)
      out.reverse_log_variance = vp_reverse_log_variance(precond->schedule(), sigma, var_interp);
    return out;
  };
  if (guidance == 1.0) {
    return [precond, labels, with_variance](const torch::Tensor& x, const torch::Tensor& sigma) mutable {
      auto out = precond->forward(x, sigma, labels);
      return with_variance({out.denoised, {}}, out.var_interp, sigma);
    };
  }
  check_guidance_possible(precond->net(), labels);
  auto null_labels = torch::full_like(labels, precond->net().null_label());
  auto both_labels = torch::cat({labels, null_labels});
  return [precond, both_labels, guidance, with_variance](const torch::Tensor& x, const torch::Tensor& sigma) mutable {
    // Ho & Salimans 2022 eq. 6 in D-space: D_u + w (D_c − D_u), one doubled batch.
    auto out = precond->forward(torch::cat({x, x}), torch::cat({sigma, sigma}), both_labels);
    auto chunks = out.denoised.chunk(2, 0);
    const auto var_interp = out.var_interp.defined() ? out.var_interp.chunk(2, 0)[0] : torch::Tensor();
    return with_variance({chunks[1] + guidance * (chunks[0] - chunks[1]), {}}, var_interp, sigma);
  };
}

}  // namespace diffuse
