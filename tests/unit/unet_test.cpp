// The ADM/DDPM UNet: output shapes over the option grid, odd feature maps, gradients reach
// every parameter, reference parameter counts, zero-initialised output, input errors,
// config errors, channels-last layout, and a tiny fit.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <string>

#include "diffuse/core/error.h"
#include "diffuse/models/embeddings.h"
#include "diffuse/models/registry.h"
#include "diffuse/models/unet.h"

using namespace diffuse;

namespace {

// A UNet small enough for many CPU forwards: widths 8, 16, 16; attention at the 2nd level
// of both 28×28 (28, 14, 7) and 32×32 (32, 16, 8) inputs.
ModelOptions tiny_options(int image_size, int channels, int num_classes) {
  ModelOptions m;
  m.arch = ModelArch::unet;
  m.in_channels = channels;
  m.image_size = image_size;
  m.num_classes = num_classes;
  m.unet.base_channels = 8;
  m.unet.channel_mult = {1, 2, 2};
  m.unet.num_res_blocks = 1;
  m.unet.attention_resolutions = {14, 16};
  m.unet.num_heads = 2;
  m.unet.head_channels = -1;
  m.unet.num_groups = 4;
  return m;
}

ModelOptions preset_options(const std::string& preset, int image_size, int channels,
                            int num_classes) {
  ModelOptions m;
  apply_model_preset(preset, m);
  m.in_channels = channels;
  m.image_size = image_size;
  m.num_classes = num_classes;
  return m;
}

torch::Tensor labels_for(const ModelOptions& m, int64_t batch) {
  if (m.num_classes == 0) return {};
  // Includes the null label num_classes, so its embedding row is exercised too.
  return torch::arange(batch, torch::kLong) % (m.num_classes + 1);
}

torch::Tensor run(DiffusionNet& net, const torch::Tensor& x) {
  const int64_t batch = x.size(0);
  return net.forward(x, torch::linspace(0.0, 999.0, batch), labels_for(net.options(), batch));
}

// Zero-initialised layers block the gradient to everything upstream of them; small noise
// on every parameter makes the network generic.
void perturb_parameters(torch::nn::Module& net, double scale = 0.05) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  for (auto& p : net.parameters()) p.add_(torch::randn_like(p) * scale);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(UNet, OutputShapesOverOptionGrid) {
  // Full grid over size, channels, classes, scale_shift_norm and resblock_updown; learned σ
  // and the head option alternate so that each value meets every other axis value.
  torch::manual_seed(0);
  int configs = 0;
  for (int size : {28, 32})
    for (int channels : {1, 3})
      for (int classes : {0, 5})
        for (bool scale_shift : {false, true})
          for (bool updown : {false, true}) {
            const bool learn_sigma = configs % 2 == 1;
            const int head_channels = (configs / 2) % 2 == 1 ? 4 : -1;
            ModelOptions m = tiny_options(size, channels, classes);
            m.unet.scale_shift_norm = scale_shift;
            m.unet.resblock_updown = updown;
            m.unet.head_channels = head_channels;
            m.learn_sigma = learn_sigma;
            auto net = make_unet(m);
            const auto out = run(*net, torch::randn({2, channels, size, size}));
            const int64_t expected_channels = channels * (learn_sigma ? 2 : 1);
            EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, expected_channels, size, size}))
                << "size " << size << " channels " << channels << " classes " << classes
                << " scale_shift " << scale_shift << " updown " << updown << " learn_sigma "
                << learn_sigma << " head_channels " << head_channels;
            EXPECT_EQ(net->learns_sigma(), learn_sigma);
            EXPECT_EQ(net->null_label(), classes > 0 ? classes : -1);
            ++configs;
          }
  EXPECT_EQ(configs, 32);
}

TEST(UNet, OddFeatureMapsAreDownsampledAndRestored) {
  // 28 → 14 → 7 → 4 and back; 13 → 7 → 4 → 2: every odd size is rounded up going down and
  // restored exactly going up, for both resampling styles.
  for (int size : {28, 13})
    for (bool updown : {false, true}) {
      ModelOptions m = tiny_options(size, 1, 0);
      m.unet.channel_mult = {1, 2, 2, 2};
      m.unet.attention_resolutions = {7};
      m.unet.resblock_updown = updown;
      auto net = make_unet(m);
      perturb_parameters(*net);
      const auto out = run(*net, torch::randn({2, 1, size, size}));
      EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 1, size, size})) << size << " " << updown;
      EXPECT_TRUE(out.isfinite().all().item<bool>());
    }
}

TEST(UNet, EveryParameterGetsANonZeroGradient) {
  for (bool variant : {false, true}) {
    // ADM-like (conditional, scale-shift, resblock up/down, learned σ) and DDPM-like.
    ModelOptions m = tiny_options(16, 3, variant ? 4 : 0);
    m.unet.channel_mult = {1, 2};
    m.unet.attention_resolutions = {8};
    m.unet.scale_shift_norm = variant;
    m.unet.resblock_updown = variant;
    m.learn_sigma = variant;
    auto net = make_unet(m);
    perturb_parameters(*net);
    torch::manual_seed(2);
    const auto out = run(*net, torch::randn({5, 3, 16, 16}));
    (out - torch::randn_like(out)).square().mean().backward();
    for (const auto& item : net->named_parameters()) {
      const auto& grad = item.value().grad();
      ASSERT_TRUE(grad.defined()) << item.key();
      EXPECT_GT(grad.abs().sum().item<double>(), 0.0) << item.key() << " (variant " << variant << ")";
    }
  }
}

TEST(UNet, ParameterCountOfDdpmCifar10) {
  // Ho et al. 2020: 35.7M parameters for the CIFAR-10 model.
  auto net = make_unet(preset_options("ddpm_cifar10", 32, 3, 0));
  const int64_t n = count_parameters(*net);
  std::printf("ddpm_cifar10 (32x32x3, unconditional): %lld parameters\n", static_cast<long long>(n));
  EXPECT_NEAR(static_cast<double>(n), 35.7e6, 0.01 * 35.7e6);
  EXPECT_EQ(n, 35746307);
}

TEST(UNet, ParameterCountOfUnetSmallIsLocked) {
  // Locks the architecture: any change to the block structure changes this number.
  auto net = make_unet(preset_options("unet_small", 28, 1, 10));
  const int64_t n = count_parameters(*net);
  std::printf("unet_small (28x28x1, 10 classes): %lld parameters\n", static_cast<long long>(n));
  EXPECT_EQ(n, 1192641);
  // Attention sits at the last level for both 28 (7) and 32 (8) pixels: same count.
  EXPECT_EQ(count_parameters(*make_unet(preset_options("unet_small", 32, 1, 10))), n);
}

TEST(UNet, FreshModelOutputsExactlyZero) {
  ModelOptions m = tiny_options(28, 1, 3);
  auto net = make_unet(m);
  const auto out = run(*net, torch::randn({2, 1, 28, 28}));
  EXPECT_TRUE(out.eq(0).all().item<bool>());
}

TEST(UNet, ConditioningChangesTheOutput) {
  auto net = make_unet(tiny_options(16, 1, 3));
  perturb_parameters(*net);
  const auto x = torch::randn({1, 1, 16, 16}).expand({2, 1, 16, 16});
  const auto same_t = torch::full({2}, 10.0);
  const auto by_label = net->forward(x, same_t, torch::tensor({0, 3}, torch::kLong));
  EXPECT_FALSE(torch::allclose(by_label[0], by_label[1]));
  const auto by_time = net->forward(x, torch::tensor({10.0, 500.0}), torch::tensor({1, 1}, torch::kLong));
  EXPECT_FALSE(torch::allclose(by_time[0], by_time[1]));
}

TEST(UNet, LabelMismatchErrorsNameTheShapes) {
  auto conditional = make_unet(tiny_options(16, 1, 3));
  auto unconditional = make_unet(tiny_options(16, 1, 0));
  const auto x = torch::randn({2, 1, 16, 16});
  const auto t = torch::zeros({2});
  std::string m = error_of([&] { conditional->forward(x, t, {}); });
  EXPECT_NE(m.find("class-conditional (model.num_classes = 3)"), std::string::npos) << m;
  EXPECT_NE(m.find("got undefined"), std::string::npos) << m;
  EXPECT_NE(m.find("[2, 1, 16, 16]"), std::string::npos) << m;
  m = error_of([&] { conditional->forward(x, t, torch::zeros({3}, torch::kLong)); });
  EXPECT_NE(m.find("shape [2]"), std::string::npos) << m;
  EXPECT_NE(m.find("got [3]"), std::string::npos) << m;
  m = error_of([&] { unconditional->forward(x, t, torch::zeros({2}, torch::kLong)); });
  EXPECT_NE(m.find("unconditional"), std::string::npos) << m;
  EXPECT_NE(m.find("labels of shape [2]"), std::string::npos) << m;
  EXPECT_THROW(unconditional->forward(x, t, torch::zeros({2}, torch::kLong)), DataError);
  m = error_of([&] { unconditional->forward(torch::randn({2, 3, 16, 16}), t, {}); });
  EXPECT_NE(m.find("x must be [B, 1, H, W]"), std::string::npos) << m;
  m = error_of([&] { unconditional->forward(x, torch::zeros({2, 1}), {}); });
  EXPECT_NE(m.find("noise_cond must be [B] = [2]"), std::string::npos) << m;
}

TEST(UNet, ConfigErrorsNameTheKey) {
  const auto config_error = [](const ModelOptions& m) {
    try {
      make_unet(m);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  ModelOptions m = tiny_options(28, 1, 0);
  m.unet.num_groups = 3;
  std::string e = config_error(m);
  EXPECT_NE(e.find("model.unet.num_groups (3) must divide every channel count"), std::string::npos) << e;
  EXPECT_NE(e.find("8, 8, 16, 16"), std::string::npos) << e;

  m = tiny_options(28, 1, 0);
  m.unet.head_channels = 6;
  e = config_error(m);
  EXPECT_NE(e.find("model.unet.head_channels (6)"), std::string::npos) << e;

  m = tiny_options(28, 1, 0);
  m.unet.num_heads = 3;
  e = config_error(m);
  EXPECT_NE(e.find("model.unet.num_heads (3)"), std::string::npos) << e;

  m = tiny_options(28, 1, 0);
  m.unet.channel_mult = {};
  EXPECT_NE(config_error(m).find("model.unet.channel_mult"), std::string::npos);

  m = tiny_options(28, 1, 0);
  m.unet.dropout = 1.0;
  EXPECT_NE(config_error(m).find("model.unet.dropout"), std::string::npos);

  m = tiny_options(28, 1, 0);
  m.in_channels = 0;
  EXPECT_NE(config_error(m).find("model.in_channels"), std::string::npos);

  // Sizes that occur at no level are allowed (only logged when none occurs).
  m = tiny_options(28, 1, 0);
  m.unet.attention_resolutions = {5};
  EXPECT_NO_THROW(make_unet(m));
}

TEST(UNet, ChannelsLastInputGivesTheSameOutputInTheSameLayout) {
  ModelOptions m = tiny_options(16, 3, 0);
  m.unet.attention_resolutions = {8};
  auto net = make_unet(m);
  perturb_parameters(*net);
  const auto x = torch::randn({2, 3, 16, 16});
  const auto t = torch::tensor({3.0, 700.0});
  const auto reference = net->forward(x, t, {});
  const auto channels_last = net->forward(x.contiguous(torch::MemoryFormat::ChannelsLast), t, {});
  EXPECT_TRUE(torch::allclose(reference, channels_last, 1e-5, 1e-5));
  EXPECT_TRUE(channels_last.is_contiguous(torch::MemoryFormat::ChannelsLast));
}

TEST(UNet, FitsAFixedTargetInThirtySteps) {
  torch::manual_seed(0);
  ModelOptions m = tiny_options(8, 1, 0);
  m.unet.base_channels = 16;
  m.unet.channel_mult = {1, 2};
  m.unet.attention_resolutions = {4};
  auto net = make_unet(m);
  const auto x = torch::randn({4, 1, 8, 8});
  const auto t = torch::full({4}, 250.0);
  const auto target = torch::randn({4, 1, 8, 8});
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(3e-3));
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 30; ++step) {
    optimizer.zero_grad();
    auto loss = (net->forward(x, t, {}) - target).square().mean();
    loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  std::printf("fixed-target MSE: %.4f -> %.4f\n", first, last);
  EXPECT_LT(last, 0.25 * first);
}

// h = 2 features a half at t = 1: frequencies 10000^(-i/h) = [1, 0.01] by default, and
// 10000^(-i/(h-1)) = [1, 1e-4] with freq_shift 1 (DDPM, diffusers' DiT).
TEST(UNet, TimestepFeaturesFollowTheOrderAndTheShift) {
  const auto t = torch::ones({1});
  const auto expect = [&](const TimestepFeatures& features, std::vector<double> values) {
    const auto e = sinusoidal_embedding(t, 4, features);
    ASSERT_EQ(e.sizes(), (std::vector<int64_t>{1, 4}));
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(e[0][i].item<double>(), values[i], 1e-6) << i;
  };
  expect({}, {std::cos(1.0), std::cos(0.01), std::sin(1.0), std::sin(0.01)});
  expect({TimestepOrder::sin_cos, 1}, {std::sin(1.0), std::sin(1e-4), std::cos(1.0), std::cos(1e-4)});
  EXPECT_THROW(sinusoidal_embedding(t, 2, {TimestepOrder::cos_sin, 1}), ConfigError);
}

// diffusers' downsample_padding 0 pads one row and column at the far side, defined for even
// feature maps only; odd ones are refused naming the key.
TEST(UNet, BottomRightPaddingNeedsEvenFeatureMaps) {
  ModelOptions m = tiny_options(16, 1, 0);
  m.unet.downsample_padding = DownsamplePadding::bottom_right;
  const auto net = make_model(m);
  EXPECT_EQ(net->forward(torch::randn({1, 1, 16, 16}), torch::ones({1}), {}).sizes(),
            (std::vector<int64_t>{1, 1, 16, 16}));
  m = tiny_options(28, 1, 0);
  m.unet.channel_mult = {1, 1, 1, 1};
  m.unet.downsample_padding = DownsamplePadding::bottom_right;
  try {
    make_model(m);
    ADD_FAILURE() << "an odd feature map was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.unet.downsample_padding"), std::string::npos) << e.what();
  }
}
