// VSD's particle score model ε_φ (score_distillation.h): LoRA adapters on a second instance
// of the prior's network, or that whole network, fitted by ε-matching to the renders.
#include <cmath>

#include "diffuse/core/error.h"
#include "diffuse/distill/score_distillation.h"

namespace diffuse {
namespace {

// W = W0 + B A (Hu et al. 2022, eq. 3) for a Linear or Conv2d weight W0 [out, in, ...]:
// A [r, in·k·k] starts random, B [out, r] zero, so the adapted network starts as the original.
struct LoraAdapter {
  torch::Tensor* weight;  // the layer's own weight member, which its forward reads
  torch::Tensor base;     // W0, frozen
  torch::Tensor down, up; // A, B
};

class NetworkParticleScore : public ParticleScore {
 public:
  NetworkParticleScore(Precond network, torch::Tensor labels, const VsdOptions& options, uint64_t seed)
      : network_(std::move(network)), labels_(std::move(labels)), options_(options) {
    adapters_holder_ = std::make_shared<torch::nn::Module>("LoraAdapters");
    std::vector<torch::Tensor> trainable;
    if (options.network == ParticleScoreNetwork::copy) {
      for (auto& p : network_->parameters()) p.set_requires_grad(true);
      trainable = network_->parameters();
    } else {
      for (auto& p : network_->parameters()) p.set_requires_grad(false);
      add_adapters(seed);
      trainable = adapters_holder_->parameters();
    }
    if (trainable.empty()) throw ConfigError("vsd: the checkpoint's network has no weights to fit");
    optimizer_ = std::make_unique<torch::optim::Adam>(trainable, torch::optim::AdamOptions(options.lr));
  }

  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma) override {
    apply_adapters();
    return network_->denoise(x, sigma, labels_);
  }

  double fit(const torch::Tensor& renders, const torch::Tensor& sigma, const torch::Tensor& noise) override {
    apply_adapters();
    const auto s = sigma.view({-1, 1, 1, 1});
    const auto denoised = network_->denoise(renders + s * noise, sigma, labels_);
    // ‖ε̂_φ − n‖² with ε̂_φ = (x − D_φ)/σ, i.e. ‖(x0 − D_φ)/σ‖² (ProlificDreamer eq. 10).
    const auto loss = ((renders - denoised) / s).pow(2).mean();
    optimizer_->zero_grad();
    loss.backward();
    optimizer_->step();
    return loss.item<double>();
  }

  void save(torch::serialize::OutputArchive& archive) override {
    torch::serialize::OutputArchive weights, optimizer;
    (options_.network == ParticleScoreNetwork::copy ? static_cast<torch::nn::Module&>(*network_) : *adapters_holder_)
        .save(weights);
    optimizer_->save(optimizer);
    archive.write("weights", weights);
    archive.write("optimizer", optimizer);
  }

  void load(torch::serialize::InputArchive& archive) override {
    torch::serialize::InputArchive weights, optimizer;
    archive.read("weights", weights);
    (options_.network == ParticleScoreNetwork::copy ? static_cast<torch::nn::Module&>(*network_) : *adapters_holder_)
        .load(weights);
    archive.read("optimizer", optimizer);
    optimizer_->load(optimizer);
  }

 private:
  void add_adapters(uint64_t seed) {
    const int64_t r = options_.lora_rank;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    int64_t index = 0;
    for (const auto& module : network_->modules(/*include_self=*/false)) {
      torch::Tensor* weight = nullptr;
      if (auto* linear = module->as<torch::nn::LinearImpl>()) weight = &linear->weight;
      else if (auto* conv = module->as<torch::nn::Conv2dImpl>()) weight = &conv->weight;
      if (!weight || !weight->defined()) continue;
      const int64_t out = weight->size(0), in = weight->numel() / out;
      const auto opt = weight->options().requires_grad(false);
      LoraAdapter a{weight, weight->detach().clone(), {}, {}};
      // A ~ N(0, 1/in): the adapter's first products have the scale of the layer's input.
      a.down = adapters_holder_->register_parameter("down" + std::to_string(index),
                                                    (torch::randn({r, in}, gen, torch::kFloat32).to(opt) / std::sqrt(static_cast<double>(in))));
      a.up = adapters_holder_->register_parameter("up" + std::to_string(index), torch::zeros({out, r}, opt));
      adapters_.push_back(a);
      ++index;
    }
  }

  // Rebuilds every adapted weight from its current A and B, so that the forward that follows
  // sees them (and, when fitting, differentiates through them).
  void apply_adapters() {
    for (auto& a : adapters_) *a.weight = a.base + torch::mm(a.up, a.down).view(a.base.sizes());
  }

  Precond network_;
  torch::Tensor labels_;
  VsdOptions options_;
  std::shared_ptr<torch::nn::Module> adapters_holder_;
  std::vector<LoraAdapter> adapters_;
  std::unique_ptr<torch::optim::Adam> optimizer_;
};

}  // namespace

std::shared_ptr<ParticleScore> make_network_particle_score(Precond network, torch::Tensor labels,
                                                           const VsdOptions& options, uint64_t seed) {
  return std::make_shared<NetworkParticleScore>(std::move(network), std::move(labels), options, seed);
}

}  // namespace diffuse
