// Preconditioning and the DSM loss: with the ideal network output D returns x0 exactly for
// every prediction type, and the loss is the type's plain MSE (DESIGN §3). CFG limits.
#include <gtest/gtest.h>

#include "diffuse/losses/dsm_loss.h"
#include "diffuse/precond/precond.h"

using namespace diffuse;

namespace {

// A stand-in network: returns `output` when set, else labels broadcast as values (to see
// which labels reached the network).
class ScriptedNet : public DiffusionNet {
 public:
  explicit ScriptedNet(int64_t num_classes = 0) {
    options_.in_channels = 1;
    options_.image_size = 4;
    options_.num_classes = static_cast<int>(num_classes);
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& noise_cond,
                        const torch::Tensor& labels) override {
    last_input = x;
    last_noise_cond = noise_cond;
    if (output.defined()) return output;
    return labels.to(torch::kFloat32).view({-1, 1, 1, 1}).expand_as(x).clone();
  }
  const ModelOptions& options() const override { return options_; }
  torch::Tensor output, last_input, last_noise_cond;

 private:
  ModelOptions options_;
};

NoiseSchedule schedule_for(Prediction p) {
  if (p == Prediction::edm) return NoiseSchedule::edm(0.002, 80, 0.5);
  if (p == Prediction::flow) return NoiseSchedule::flow(1e-3, 999.0, 1.0);
  return NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
}

// The ideal F for each type, given x0 and the noise n with x = x0 + σ n.
torch::Tensor ideal_output(Prediction p, const torch::Tensor& x0, const torch::Tensor& n,
                           const torch::Tensor& sigma) {
  const auto s = sigma.view({-1, 1, 1, 1});
  const auto alpha = torch::rsqrt(1 + s * s), beta = s * torch::rsqrt(1 + s * s);  // √ᾱ, √(1-ᾱ)
  switch (p) {
    case Prediction::eps: return n;
    case Prediction::v: return alpha * n - beta * x0;
    case Prediction::x0: return x0;
    case Prediction::flow: return n - x0;  // v = ε - x0 of x_t = (1-t) x0 + t ε
    case Prediction::edm: {
      const double sd = 0.5;
      const auto x = x0 + s * n;
      const auto c_skip = sd * sd / (s * s + sd * sd), c_out = s * sd * torch::rsqrt(s * s + sd * sd);
      return (x0 - c_skip * x) / c_out;
    }
  }
  return {};
}

// D(x0 + σ n; σ) = x0 when the network returns the ideal output; returns the network.
std::shared_ptr<ScriptedNet> expect_ideal_output_reconstructs_x0(Prediction p, const NoiseSchedule& schedule,
                                                                 std::vector<float> sigmas) {
  auto net = std::make_shared<ScriptedNet>();
  Precond precond(net, p, schedule);
  torch::manual_seed(0);
  auto x0 = torch::randn({3, 1, 4, 4});
  auto n = torch::randn({3, 1, 4, 4});
  auto sigma = torch::tensor(sigmas);
  net->output = ideal_output(p, x0, n, sigma);
  auto d = precond->denoise(x0 + sigma.view({-1, 1, 1, 1}) * n, sigma, {});
  EXPECT_TRUE(torch::allclose(d, x0, 1e-4, 1e-4)) << (d - x0).abs().max().item<float>();
  return net;
}

}  // namespace

class PrecondAllTypes : public ::testing::TestWithParam<Prediction> {};

TEST_P(PrecondAllTypes, IdealOutputReconstructsX0) {
  expect_ideal_output_reconstructs_x0(GetParam(), schedule_for(GetParam()), {0.01f, 1.0f, 40.0f});
}

TEST_P(PrecondAllTypes, NetworkInputAndNoiseConditioning) {
  const Prediction p = GetParam();
  auto net = std::make_shared<ScriptedNet>();
  net->output = torch::zeros({2, 1, 4, 4});
  const auto schedule = schedule_for(p);
  Precond precond(net, p, schedule);
  auto x = torch::ones({2, 1, 4, 4});
  const double s0 = schedule.is_vp() ? schedule.sigmas()[100] : 2.0;
  auto sigma = torch::tensor({static_cast<float>(s0), static_cast<float>(s0)});
  precond->denoise(x, sigma, {});
  double expect_c_in = 1 / std::sqrt(1 + s0 * s0), expect_noise = 100.0;
  if (p == Prediction::edm) expect_c_in = 1 / std::sqrt(s0 * s0 + 0.25), expect_noise = std::log(s0) / 4;
  // Flow: the network sees x_t = x/(1+σ) at time 1000 t, t = σ/(1+σ).
  if (p == Prediction::flow) expect_c_in = 1 / (1 + s0), expect_noise = 1000 * s0 / (1 + s0);
  EXPECT_NEAR(net->last_input[0][0][0][0].item<float>(), expect_c_in, 1e-6);
  EXPECT_NEAR(net->last_noise_cond[0].item<float>(), expect_noise, 1e-3);
}

TEST_P(PrecondAllTypes, UniformDsmLossIsThePlainTargetMse) {
  const Prediction p = GetParam();
  auto net = std::make_shared<ScriptedNet>();
  DiffusionOptions options;
  options.prediction = p;
  options.weighting = p == Prediction::edm ? LossWeighting::edm : LossWeighting::uniform;
  if (p == Prediction::edm) options.sigma_distribution = SigmaDistribution::log_normal;
  if (p == Prediction::flow) options.sigma_distribution = SigmaDistribution::uniform_t;
  const auto schedule = schedule_for(p);
  Precond precond(net, p, schedule);
  TrainingDrawDistribution draws(options, schedule);
  auto x0 = torch::randn({4, 1, 4, 4}, torch::Generator(at::make_generator<at::CPUGeneratorImpl>(3)));
  net->output = torch::zeros({4, 1, 4, 4});

  // Replay the generator to know σ and n that the loss draws.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  auto replay = at::make_generator<at::CPUGeneratorImpl>(11);
  const auto loss = dsm_loss(precond, x0, {}, draws, options, gen).loss.item<double>();
  const auto sigma = draws.sample_sigma(4, replay, torch::kCPU);
  const auto n = torch::randn(x0.sizes(), replay, torch::kFloat32);
  const auto target = ideal_output(p, x0, n, sigma);
  // F = 0, so the type's own MSE is mean(target²); EDM's λ-weighted D-loss equals it too.
  EXPECT_NEAR(loss, target.square().mean().item<double>(), 1e-4 * std::max(1.0, loss));
}

INSTANTIATE_TEST_SUITE_P(Types, PrecondAllTypes,
                         ::testing::Values(Prediction::eps, Prediction::v, Prediction::x0, Prediction::edm,
                                           Prediction::flow));

TEST(Precond, EveryPredictionReconstructsX0OnTheVeAndFlowSchedules) {
  // Scalings are σ-space formulas; only c_noise comes from the schedule.
  for (const auto& schedule : {NoiseSchedule::ve(0.01, 50.0), NoiseSchedule::flow(1e-3, 999.0, 3.0)}) {
    for (Prediction p : {Prediction::eps, Prediction::v, Prediction::x0, Prediction::flow}) {
      SCOPED_TRACE(enum_name(p, kPredictionNames));
      const auto net = expect_ideal_output_reconstructs_x0(p, schedule, {0.02f, 1.0f, 40.0f});
      EXPECT_TRUE(torch::allclose(net->last_noise_cond, schedule.noise_input(torch::tensor({0.02f, 1.0f, 40.0f}))));
    }
  }
}

TEST(TrainingNoise, VeLogUniformAndFlowDistributions) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  DiffusionOptions ve;
  ve.sigma_distribution = SigmaDistribution::log_uniform;
  ve.sigma_min = 0.01;
  ve.sigma_max = 50.0;
  const auto log_sigma = TrainingDrawDistribution(ve, NoiseSchedule::ve(0.01, 50.0)).sample_sigma(20000, gen, torch::kCPU).log();
  EXPECT_GE(log_sigma.min().item<float>(), std::log(0.01f) - 1e-5);
  EXPECT_LE(log_sigma.max().item<float>(), std::log(50.0f) + 1e-5);
  EXPECT_NEAR(log_sigma.mean().item<float>(), 0.5 * (std::log(0.01) + std::log(50.0)), 0.05);

  DiffusionOptions flow;
  flow.sigma_distribution = SigmaDistribution::uniform_t;
  flow.sigma_min = 1e-3;
  flow.sigma_max = 999.0;
  const auto schedule = NoiseSchedule::flow(1e-3, 999.0, 1.0);
  const auto sigma = TrainingDrawDistribution(flow, schedule).sample_sigma(20000, gen, torch::kCPU);
  const auto t = sigma / (1 + sigma);
  EXPECT_NEAR(t.mean().item<float>(), 0.5, 0.01);
  EXPECT_NEAR(t.var().item<float>(), 0.998 * 0.998 / 12, 0.002);
  // log_normal for flow is SD3's logit-normal t: logit t = ln σ ~ N(p_mean, p_std²); the
  // shift multiplies σ.
  flow.sigma_distribution = SigmaDistribution::log_normal;
  flow.p_mean = 0.5;
  flow.p_std = 1.0;
  flow.shift = 2.0;
  const auto logit = (TrainingDrawDistribution(flow, schedule).sample_sigma(20000, gen, torch::kCPU) / 2.0).log();
  EXPECT_NEAR(logit.mean().item<float>(), 0.5, 0.03);
  EXPECT_NEAR(logit.std().item<float>(), 1.0, 0.03);
}

TEST(LossWeight, MinSnrMatchesHangEtAl) {
  DiffusionOptions o;
  o.min_snr_gamma = 5.0;
  auto sigma = torch::tensor({0.1f, 1.0f, 3.0f});
  const auto eps_w = loss_weight(LossWeighting::min_snr, sigma, -sigma, o);
  // ε-prediction: min(SNR, γ)/SNR with SNR = 1/σ².
  EXPECT_NEAR(eps_w[0].item<float>(), 5.0 / 100.0, 1e-6);
  EXPECT_NEAR(eps_w[1].item<float>(), 1.0, 1e-6);
  EXPECT_NEAR(eps_w[2].item<float>(), 1.0, 1e-6);
  const auto v_w = loss_weight(LossWeighting::min_snr, sigma, -sigma * torch::rsqrt(1 + sigma * sigma), o);
  EXPECT_NEAR(v_w[0].item<float>(), 5.0 / 101.0, 1e-6);  // min(SNR,γ)/(SNR+1)
  EXPECT_NEAR(v_w[2].item<float>(), (1.0 / 9.0) / (1.0 / 9.0 + 1.0), 1e-6);
}

TEST(TrainingNoise, LabelDropoutRateAndVpGrid) {
  DiffusionOptions o;
  o.p_uncond = 0.25;
  const auto schedule = NoiseSchedule::vp_linear(1000, 1e-4, 0.02);
  TrainingDrawDistribution draws(o, schedule);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto labels = torch::zeros({20000}, torch::kLong);
  const double dropped = (draws.drop_labels(labels, 10, gen) == 10).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(dropped, 0.25, 4 * std::sqrt(0.25 * 0.75 / 20000));
  torch::Tensor t;
  auto sigma = draws.sample_sigma(1000, gen, torch::kCPU, &t);
  for (int i = 0; i < 1000; i += 97)
    EXPECT_FLOAT_EQ(sigma[i].item<float>(), static_cast<float>(schedule.sigmas()[t[i].item<int64_t>()]));
  EXPECT_GE(t.min().item<int64_t>(), 0);
  EXPECT_LE(t.max().item<int64_t>(), 999);
}

TEST(Cfg, WeightZeroIsUnconditionalAndOneIsConditional) {
  auto net = std::make_shared<ScriptedNet>(10);
  Precond precond(net, Prediction::x0, NoiseSchedule::vp_linear(1000, 1e-4, 0.02));
  auto labels = torch::tensor({3, 7}, torch::kLong);
  auto x = torch::zeros({2, 1, 4, 4});
  auto sigma = torch::tensor({1.0f, 1.0f});
  // x0-prediction with the scripted net: D = label value.
  auto d0 = make_cfg_denoiser(precond, labels, 0.0)(x, sigma);
  EXPECT_TRUE(torch::allclose(d0, torch::full_like(x, 10.0)));
  auto d1 = make_cfg_denoiser(precond, labels, 1.0)(x, sigma);
  EXPECT_FLOAT_EQ(d1[0][0][0][0].item<float>(), 3.0f);
  EXPECT_FLOAT_EQ(d1[1][0][0][0].item<float>(), 7.0f);
  auto d3 = make_cfg_denoiser(precond, labels, 3.0)(x, sigma);
  EXPECT_FLOAT_EQ(d3[0][0][0][0].item<float>(), 10.0f + 3.0f * (3.0f - 10.0f));
  EXPECT_FLOAT_EQ(d3[1][0][0][0].item<float>(), 10.0f + 3.0f * (7.0f - 10.0f));
}

TEST(Cfg, UnconditionalModelIsAClearError) {
  auto net = std::make_shared<ScriptedNet>(0);
  Precond precond(net, Prediction::eps, NoiseSchedule::vp_linear(1000, 1e-4, 0.02));
  try {
    make_cfg_denoiser(precond, torch::tensor({1}), 3.0);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unconditional"), std::string::npos);
  }
}
