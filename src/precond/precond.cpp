#include "diffuse/precond/precond.h"

#include "diffuse/core/error.h"

namespace diffuse {

Scalings compute_scalings(Prediction prediction, const torch::Tensor& sigma,
                          const NoiseSchedule& schedule) {
  const auto s = sigma.to(torch::kFloat32).view({-1, 1, 1, 1});
  Scalings out;
  // VP types: x_t = √ᾱ x0 + √(1-ᾱ) ε is c_in·x in σ-space (√ᾱ = 1/√(1+σ²)); the network
  // sees the timestep t(σ) it was trained on. DESIGN §3.
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
    case Prediction::edm: {  // Karras et al. 2022, Table 1 ("Ours")
      const double sd = schedule.sigma_data();
      out.c_skip = sd * sd / (s * s + sd * sd);
      out.c_out = s * sd * torch::rsqrt(s * s + sd * sd);
      out.c_in = torch::rsqrt(s * s + sd * sd);
      out.c_noise = sigma.to(torch::kFloat32).log() / 4.0;
      return out;
    }
  }
  out.c_noise = schedule.is_vp() ? schedule.t_from_sigma(sigma.to(torch::kFloat32))
                                 : sigma.to(torch::kFloat32).log() / 4.0;
  return out;
}

PrecondImpl::PrecondImpl(std::shared_ptr<DiffusionNet> net, Prediction prediction,
                         NoiseSchedule schedule)
    : net_(std::move(net)), prediction_(prediction), schedule_(std::move(schedule)) {
  register_module("net", net_);
}

PrecondOutput PrecondImpl::forward(const torch::Tensor& x, const torch::Tensor& sigma,
                                   const torch::Tensor& labels) {
  const auto sc = compute_scalings(prediction_, sigma, schedule_);
  auto f = net_->forward(x * sc.c_in.to(x.scalar_type()), sc.c_noise, labels);
  PrecondOutput out;
  const int64_t channels = x.size(1);
  if (net_->learns_sigma()) {
    out.raw = f.narrow(1, 0, channels);
    out.var_interp = f.narrow(1, channels, channels);
  } else {
    out.raw = f;
  }
  // D = c_skip x + c_out F, in float32 whatever precision F came out in.
  out.denoised = sc.c_skip * x.to(torch::kFloat32) + sc.c_out * out.raw.to(torch::kFloat32);
  return out;
}

DenoiserFn make_denoiser(Precond precond, torch::Tensor labels) {
  return [precond, labels](const torch::Tensor& x, const torch::Tensor& sigma) mutable {
    return precond->denoise(x, sigma, labels);
  };
}

DenoiserFn make_cfg_denoiser(Precond precond, torch::Tensor labels, double guidance) {
  const int64_t null_label = precond->net().null_label();
  if (null_label < 0)
    throw ConfigError("classifier-free guidance needs a class-conditional model with a null "
                      "class; this checkpoint is unconditional (omit --cfg)");
  if (!labels.defined())
    throw ConfigError("classifier-free guidance needs class labels (--class or --classes)");
  if (guidance == 1.0) return make_denoiser(precond, labels);
  auto null_labels = torch::full_like(labels, null_label);
  auto both_labels = torch::cat({labels, null_labels});
  return [precond, both_labels, guidance](const torch::Tensor& x, const torch::Tensor& sigma) mutable {
    // Ho & Salimans 2022 eq. 6 in D-space: D_u + w (D_c − D_u), one doubled batch.
    auto d = precond->denoise(torch::cat({x, x}), torch::cat({sigma, sigma}), both_labels);
    auto chunks = d.chunk(2, 0);
    return chunks[1] + guidance * (chunks[0] - chunks[1]);
  };
}

}  // namespace diffuse
