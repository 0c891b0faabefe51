// DiT (Peebles & Xie 2023): shapes over every preset family and patch size, parameter
// counts of the paper's models, adaLN-Zero's zero output, gradients to every parameter,
// the attention kernel against references, a short fit, a checkpoint round trip, the
// option errors, and the DiT behind the Denoiser abstraction (every prediction type,
// sampler, guidance and DPS).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "diffuse/core/compat.h"
#include "diffuse/core/error.h"
#include "diffuse/core/seeded_noise.h"
#include "diffuse/inverse/dps.h"
#include "diffuse/inverse/operator.h"
#include "diffuse/models/dit.h"
#include "diffuse/models/registry.h"
#include "diffuse/precond/precond.h"
#include "diffuse/sampling/generate.h"
#include "diffuse/sampling/sampler.h"
#include "diffuse/schedule/sigma_spacing.h"
#include "models/dit_attention.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

ModelOptions dit_options(const std::string& preset, int in_channels, int image_size,
                         int num_classes, bool learn_sigma) {
  ModelOptions o;
  apply_model_preset(preset, o);
  o.in_channels = in_channels;
  o.image_size = image_size;
  o.num_classes = num_classes;
  o.learn_sigma = learn_sigma;
  return o;
}

// A DiT small enough to train in a test: 8×8 images, 2×2 patches (16 tokens), width 64.
ModelOptions tiny_options(int num_classes = 10, bool learn_sigma = false) {
  ModelOptions o = dit_options("dit_s_2", 3, 8, num_classes, learn_sigma);
  o.dit.depth = 2;
  o.dit.hidden_size = 64;
  o.dit.num_heads = 4;
  return o;
}

struct Batch {
  torch::Tensor x, noise_cond, labels;
};

Batch random_batch(const ModelOptions& o, int64_t batch_size) {
  Batch b;
  b.x = torch::randn({batch_size, o.in_channels, o.image_size, o.image_size});
  b.noise_cond = torch::rand({batch_size}) * 999.0;
  if (o.num_classes > 0) b.labels = torch::randint(0, o.num_classes + 1, {batch_size}, torch::kInt64);
  return b;
}

// adaLN-Zero makes the model output exactly 0 at initialisation and blocks the gradient to
// everything behind the gates; small noise on the zero-initialised weights opens them.
void perturb_zero_initialised_weights(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) {
    const std::string& name = p.key();
    if (name.find("adaln_modulation") != std::string::npos || name.rfind("final_layer.linear", 0) == 0)
      p.value().add_(0.05 * torch::randn_like(p.value()));
  }
}

int64_t count_buffer_elements(const torch::nn::Module& model) {
  int64_t n = 0;
  for (const auto& b : model.buffers()) n += b.numel();
  return n;
}

std::string config_error_of(const ModelOptions& o) {
  try {
    make_dit(o);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(DiT, OutputShapesForEveryPresetFamilyAndPatchSize) {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  for (const char* family : {"s", "b", "l", "xl"}) {
    for (int patch : {2, 4, 8}) {
      const std::string preset = "dit_" + std::string(family) + "_" + std::to_string(patch);
      const bool learn_sigma = patch != 4;
      // The preset's width and heads at depth 1 on a 2×2 grid of patches keep this quick.
      const int image_size = 2 * patch;
      ModelOptions o = dit_options(preset, 3, image_size, 10, learn_sigma);
      o.dit.depth = 1;
      auto model = make_dit(o);
      Batch b = random_batch(o, 2);
      auto out = model->forward(b.x, b.noise_cond, b.labels);
      EXPECT_EQ(out.sizes(), torch::IntArrayRef({2, learn_sigma ? 6 : 3, image_size, image_size})) << preset;
      EXPECT_EQ(model->options().dit.patch_size, patch) << preset;
    }
  }
}

TEST(DiT, MnistSizedUnconditionalShapes) {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  for (int patch : {2, 4}) {  // 28×28 splits into 14×14 or 7×7 patches
    const bool learn_sigma = patch == 4;
    ModelOptions o = dit_options("dit_s_" + std::to_string(patch), 1, 28, 0, learn_sigma);
    o.dit.depth = 1;
    auto model = make_dit(o);
    Batch b = random_batch(o, 3);
    auto out = model->forward(b.x, b.noise_cond, torch::Tensor());
    EXPECT_EQ(out.sizes(), torch::IntArrayRef({3, learn_sigma ? 2 : 1, 28, 28}));
    EXPECT_EQ(model->null_label(), -1);
  }
}

// Peebles & Xie 2023 Table 1 at 256×256 (32×32×4 latents, 1000 classes, learned σ). The
// reference code counts its frozen pos_embed as a parameter (DiT-XL/2: 675,129,632); here it
// is a buffer, so the trainable count is checked exactly and the sum against the paper.
struct PaperCount {
  const char* preset;
  int64_t trainable;
  double paper_millions;
};
const PaperCount kPaperCounts[] = {
    {"dit_s_2", 32'865'056, 33.0},
    {"dit_b_2", 130'315'808, 130.5},
    {"dit_l_2", 457'840'672, 458.1},
    {"dit_xl_2", 674'834'720, 675.1},
};

void expect_paper_count(const PaperCount& e, int64_t trainable, int64_t buffer_elements) {
  EXPECT_EQ(trainable, e.trainable) << e.preset;
  EXPECT_NEAR(static_cast<double>(trainable + buffer_elements) / 1e6, e.paper_millions,
              0.005 * e.paper_millions) << e.preset;
}

TEST(DiT, ParameterCountsMatchPaper) {
  // Building all four at full depth costs ~1.3 G parameters of initialisation (minutes on a
  // shared 2-core CPU). The blocks are identical, so a depth-1 model plus (depth - 1) more
  // copies of its block gives the exact count. count_model_parameters (what `diffuse info`
  // prints) must agree with it.
  torch::NoGradGuard no_grad;
  for (const auto& e : kPaperCounts) {
    ModelOptions o = dit_options(e.preset, 4, 32, 1000, true);
    EXPECT_EQ(count_model_parameters(o), e.trainable) << e.preset;
    const int depth = o.dit.depth;
    o.dit.depth = 1;
    auto model = make_dit(o);
    const auto block = model->named_children()["blocks"]->children().at(0);
    const int64_t trainable = count_parameters(*model) + (depth - 1) * count_parameters(*block);
    expect_paper_count(e, trainable, count_buffer_elements(*model));
  }
}

TEST(DiT, PositionEmbeddingIsFixedTwoDimensionalSinCos) {
  ModelOptions o = tiny_options();
  auto model = make_dit(o);
  for (const auto& p : model->named_parameters()) EXPECT_EQ(p.key().find("pos_embed"), std::string::npos);
  auto buffers = model->named_buffers();
  ASSERT_TRUE(buffers.contains("pos_embed"));
  auto pos = buffers["pos_embed"];  // [1, 16, 64]: a 4×4 grid
  ASSERT_EQ(pos.sizes(), torch::IntArrayRef({1, 16, 64}));
  const int64_t grid = 4, half = 32;
  auto first_half = pos[0].slice(1, 0, half), second_half = pos[0].slice(1, half, 2 * half);
  // Tokens in the same column share the first half, tokens in the same row the second half.
  EXPECT_TRUE(torch::equal(first_half[1], first_half[1 + grid]));
  EXPECT_TRUE(torch::equal(second_half[grid], second_half[grid + 3]));
  EXPECT_FALSE(torch::equal(first_half[0], first_half[1]));
  // Token (row 2, column 1), dim pair 0: sin(1·ω_0) = sin 1 and cos 1; row part sin 2, cos 2.
  auto token = pos[0][2 * grid + 1];
  EXPECT_NEAR(token[0].item<double>(), std::sin(1.0), 1e-6);
  EXPECT_NEAR(token[16].item<double>(), std::cos(1.0), 1e-6);
  EXPECT_NEAR(token[32].item<double>(), std::sin(2.0), 1e-6);
  EXPECT_NEAR(token[48].item<double>(), std::cos(2.0), 1e-6);
  // Dim pair 1 of the column part: ω_1 = 10000^(-1/16).
  EXPECT_NEAR(token[1].item<double>(), std::sin(std::pow(10000.0, -1.0 / 16.0)), 1e-6);
}

TEST(DiT, FreshModelOutputsExactlyZero) {
  torch::manual_seed(1);
  for (bool learn_sigma : {false, true}) {
    ModelOptions o = tiny_options(10, learn_sigma);
    auto model = make_dit(o);
    Batch b = random_batch(o, 4);
    auto out = model->forward(b.x, b.noise_cond, b.labels);
    EXPECT_TRUE(torch::equal(out, torch::zeros_like(out)));
  }
}

TEST(DiT, EveryParameterGetsAGradient) {
  torch::manual_seed(2);
  ModelOptions o = tiny_options(10, true);
  auto model = make_dit(o);
  perturb_zero_initialised_weights(*model);
  Batch b = random_batch(o, 4);
  b.labels = torch::tensor({0, 3, 7, 10}, torch::kInt64);  // includes the null label
  model->forward(b.x, b.noise_cond, b.labels).square().mean().backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST(DiT, AttentionMatchesReferenceImplementations) {
  torch::manual_seed(3);
  torch::NoGradGuard no_grad;
  // The kernel itself on random [B, heads, N, d] tensors.
  auto q = torch::randn({2, 3, 17, 8}), k = torch::randn({2, 3, 17, 8}), v = torch::randn({2, 3, 17, 8});
  EXPECT_TRUE(torch::allclose(compat::scaled_dot_product_attention(q, k, v),
                              compat::reference_attention(q, k, v), 1e-5, 1e-5));

  // The DiT attention layer through both kernels, and against LibTorch's MultiheadAttention
  // with the same weights (its in_proj packs q, k, v in the same order as our qkv Linear).
  DiTAttention attention(64, 4);
  auto x = torch::randn({2, 10, 64});
  auto fused = attention->forward(x);
  EXPECT_TRUE(torch::allclose(fused, attention->forward_with(x, compat::reference_attention), 1e-5, 1e-5));

  torch::nn::MultiheadAttention mha(torch::nn::MultiheadAttentionOptions(64, 4));
  mha->in_proj_weight.copy_(attention->qkv->weight);
  mha->in_proj_bias.copy_(attention->qkv->bias);
  mha->out_proj->weight.copy_(attention->proj->weight);
  mha->out_proj->bias.copy_(attention->proj->bias);
  auto x_seq_first = x.transpose(0, 1);  // [N, B, D]
  auto expected = std::get<0>(mha->forward(x_seq_first, x_seq_first, x_seq_first)).transpose(0, 1);
  EXPECT_TRUE(torch::allclose(fused, expected, 1e-5, 1e-5));
}

TEST(DiT, ShortTrainingRunLowersLoss) {
  torch::manual_seed(4);
  ModelOptions o = tiny_options();
  auto model = make_dit(o);
  Batch b = random_batch(o, 8);
  auto target = torch::tanh(b.x) + 0.1 * b.labels.to(torch::kFloat32).view({-1, 1, 1, 1});
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(2e-3));
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 30; ++step) {
    optimizer.zero_grad();
    auto loss = (model->forward(b.x, b.noise_cond, b.labels) - target).square().mean();
    loss.backward();
    optimizer.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_LT(last, 0.25 * first) << "first " << first << ", last " << last;
}

TEST(DiT, CheckpointRoundTripGivesIdenticalOutputs) {
  torch::manual_seed(5);
  ModelOptions o = tiny_options(10, true);
  auto saved = make_dit(o);
  perturb_zero_initialised_weights(*saved);
  test::TempDir dir;
  const std::string path = dir.file("dit.pt");
  {
    torch::serialize::OutputArchive archive;
    saved->save(archive);
    archive.save_to(path);
  }
  auto loaded = make_dit(o);  // different random initialisation, zero output
  {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    loaded->load(archive);
  }
  torch::NoGradGuard no_grad;
  Batch b = random_batch(o, 3);
  auto expected = saved->forward(b.x, b.noise_cond, b.labels);
  EXPECT_GT(expected.abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(loaded->forward(b.x, b.noise_cond, b.labels), expected));
}

TEST(DiT, PatchSizeMustDivideImageSize) {
  EXPECT_NO_THROW(make_dit(tiny_options()));
  ModelOptions o = tiny_options();
  o.image_size = 28;
  o.dit.patch_size = 8;
  const std::string m = config_error_of(o);
  EXPECT_NE(m.find("model.dit.patch_size 8"), std::string::npos) << m;
  EXPECT_NE(m.find("model.image_size 28"), std::string::npos) << m;
  EXPECT_NE(m.find("1, 2, 4, 7, 14, 28"), std::string::npos) << m;
}

TEST(DiT, BadWidthsNameTheirKeys) {
  ModelOptions o = tiny_options();
  o.dit.num_heads = 5;
  EXPECT_NE(config_error_of(o).find("model.dit.hidden_size: must be a positive multiple of num_heads (5), found 64"),
            std::string::npos);
  o = tiny_options();
  o.dit.hidden_size = 66;
  o.dit.num_heads = 3;
  EXPECT_NE(config_error_of(o).find("model.dit.hidden_size: must be a positive multiple of 4"),
            std::string::npos);
}

TEST(DiT, LabelsMustMatchConditioning) {
  torch::manual_seed(6);
  ModelOptions conditional = tiny_options(10);
  auto model = make_dit(conditional);
  Batch b = random_batch(conditional, 2);
  try {
    model->forward(b.x, b.noise_cond, torch::Tensor());
    FAIL() << "missing labels accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("model.num_classes 10"), std::string::npos) << e.what();
  }
  auto unconditional = make_dit(tiny_options(0));
  EXPECT_THROW(unconditional->forward(b.x, b.noise_cond, b.labels), DataError);
  EXPECT_THROW(model->forward(b.x, b.noise_cond, b.labels.to(torch::kFloat32)), DataError);
  EXPECT_THROW(model->forward(torch::randn({2, 3, 16, 16}), b.noise_cond, b.labels), DataError);
}

// With F ≡ 0 (adaLN-Zero at initialisation) D(x; σ) = c_skip(σ) x exactly, whatever the
// prediction type: the preconditioning takes only the first C of the 2C learned-σ channels.
TEST(DiT, FreshModelDenoisesToTheSkipTermForEveryPrediction) {
  torch::manual_seed(6);
  torch::NoGradGuard no_grad;
  for (const auto prediction : {Prediction::eps, Prediction::v, Prediction::x0, Prediction::edm}) {
    const bool vp = prediction != Prediction::edm;
    const auto schedule = vp ? NoiseSchedule::vp_linear(1000, 1e-4, 0.02) : NoiseSchedule::edm(0.002, 80.0, 0.5);
    Precond precond(make_dit(tiny_options(10, /*learn_sigma=*/vp)), prediction, schedule);
    const auto x = torch::randn({3, 3, 8, 8});
    const auto sigma = torch::tensor({0.05f, 1.0f, 40.0f});
    const auto labels = torch::tensor({0, 5, 10}, torch::kInt64);
    const auto out = precond->forward(x, sigma, labels);
    const auto expected = compute_scalings(prediction, sigma, schedule).c_skip * x;
    SCOPED_TRACE(static_cast<int>(prediction));
    ASSERT_EQ(out.denoised.sizes(), x.sizes());
    EXPECT_TRUE(torch::allclose(out.denoised, expected, 1e-6, 1e-6));
    EXPECT_EQ(out.var_interp.defined(), vp);
    if (vp) {
      EXPECT_EQ(out.var_interp.sizes(), x.sizes());
    }
  }
}

// A (perturbed) learned-σ DiT needs nothing of its own to be sampled: every sampler in the
// table, with guidance, gives finite samples that depend only on the seeds.
TEST(DiT, EverySamplerRunsItWithGuidance) {
  torch::manual_seed(7);
  auto net = make_dit(tiny_options(10, /*learn_sigma=*/true));
  perturb_zero_initialised_weights(*net);
  Precond precond(net, Prediction::eps, NoiseSchedule::vp_linear(1000, 1e-4, 0.02));
  for (const auto& entry : sampler_table()) {
    SCOPED_TRACE(entry.name);
    GenerateOptions g;
    g.sampler = entry.name;
    g.steps = 4;
    g.seeds = {0, 1};
    g.labels = {2, 7};
    g.cfg = 2.0;
    const auto first = generate_samples(precond, g);
    ASSERT_EQ(first.sizes(), (std::vector<int64_t>{2, 3, 8, 8}));
    EXPECT_TRUE(torch::isfinite(first).all().item<bool>());
    EXPECT_TRUE(torch::equal(first, generate_samples(precond, g)));
  }
}

// DPS differentiates through the DiT (under a guidance wrapper): its restorations agree with
// the measurement better than unguided samples from the same noise (ζ = 0). EDM
// preconditioning keeps the random network's D(x; σ) bounded (c_out ≤ σ_d) at every σ.
TEST(DiT, DpsThroughAGuidedDiTFitsTheMeasurement) {
  torch::manual_seed(8);
  auto net = make_dit(tiny_options(10, /*learn_sigma=*/false));
  perturb_zero_initialised_weights(*net);
  for (auto& p : net->parameters()) p.set_requires_grad(false);
  const auto schedule = NoiseSchedule::edm(0.002, 80.0, 0.5);
  Precond precond(net, Prediction::edm, schedule);
  OperatorOptions box;
  box.name = "inpaint_box";
  box.box_size = 4;
  const auto op = make_operator(box, 3, 8);
  const std::vector<uint64_t> seeds{0, 1};
  const auto clean = torch::tanh(torch::randn({2, 3, 8, 8}));
  const auto y = op->forward(clean);
  const auto sigmas = sampling_sigmas(schedule, 20, TimestepSpacing::trailing);
  const auto denoiser = make_cfg_denoiser(precond, torch::tensor({2, 7}, torch::kInt64), 2.0);
  auto restore = [&](double zeta) {
    SeededNoise noise(seeds, torch::kCPU);
    DpsOptions options;
    options.zeta = zeta;
    const auto x = sigmas.front() * noise.randn({3, 8, 8});
    return sample_dps(denoiser, *op, y, x, sigmas, noise, options);
  };
  const auto guided = restore(1.0), unguided = restore(0.0);
  ASSERT_EQ(guided.sizes(), clean.sizes());
  ASSERT_TRUE(torch::isfinite(guided).all().item<bool>());
  const double guided_residual = (op->forward(guided) - y).norm().item<double>();
  const double unguided_residual = (op->forward(unguided) - y).norm().item<double>();
  EXPECT_LT(guided_residual, 0.5 * unguided_residual)
      << "guided " << guided_residual << ", unguided " << unguided_residual;
}
