// Importers (interop/weight_import.h) against the reference implementations themselves: the
// fixtures of scripts/make_interop_fixtures.py hold a randomly initialised model of the other
// project, its state dict as that project saves it, an input and that project's output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "diffuse/core/error.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/interop/weight_import.h"
#include "diffuse/io/safetensors.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

std::string fixture(const std::string& name) { return (test::source_dir() / "tests/data/interop" / name).string(); }

ImportOptions request(ImportSource source, const std::string& weights, const std::string& out,
                      const std::string& config = "") {
  ImportOptions options;
  options.source = source;
  options.weights = weights;
  options.out = out;
  options.config = config;
  return options;
}

std::string import_error(const std::string& weights, const std::string& out) {
  return test::error_message<CheckpointError>([&] { import_weights(request(ImportSource::dit_official, weights, out)); });
}

// Our forward pass of the imported model against the DiT repository's output.
void expect_reference_forward(const std::string& weights) {
  test::TempDir dir;
  const ImportSummary summary = import_weights(request(ImportSource::dit_official, weights, dir.file("dit.safetensors")));
  EXPECT_EQ(summary.description, "DiT depth 2, hidden 128, 2 heads, patch 2, 4×8×8 inputs, 3 classes, learned variance");
  LoadedModel model = load_model_for_inference(dir.file("dit.safetensors"), true, torch::kCPU);
  const auto& o = model.config.model;
  EXPECT_EQ(o.arch, ModelArch::dit);
  EXPECT_EQ(o.dit.mlp_ratio, 2.0);
  EXPECT_TRUE(o.learn_sigma);
  EXPECT_EQ(model.config.diffusion.schedule, ScheduleKind::vp_linear);
  EXPECT_EQ(model.config.diffusion.prediction, Prediction::eps);
  const auto io = read_safetensors(fixture("dit_official_io.safetensors"));
  torch::NoGradGuard no_grad;
  const auto output = model.precond->net().forward(io.find("x"), io.find("t"), io.find("y"));
  const auto reference = io.find("output");
  ASSERT_EQ(output.sizes(), reference.sizes());
  // float32 through two blocks: the reference's fused attention and ours differ in rounding only.
  EXPECT_LT((output - reference).abs().max().item<double>(), 1e-4) << "reference std " << reference.std().item<double>();
}

}  // namespace

TEST(WeightImport, DitOfficialMatchesTheReferenceForward) {
  expect_reference_forward(fixture("dit_official.safetensors"));
}

// A torch.save file of a plain {name: tensor} dict (what torch::pickle_save writes, and what
// Python's torch.save(dict(state_dict)) writes) imports like the safetensors file.
TEST(WeightImport, DitOfficialReadsATorchSaveFileOfAPlainDict) {
  test::TempDir dir;
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [name, tensor] : read_safetensors(fixture("dit_official.safetensors")).tensors) dict.insert(name, tensor);
  const std::vector<char> bytes = torch::pickle_save(dict);
  test::write_file(dir.file("plain.pt"), std::string(bytes.begin(), bytes.end()));
  expect_reference_forward(dir.file("plain.pt"));
}

// The repository's own file, torch.save(model.state_dict()): an OrderedDict, which
// LibTorch's unpickler (1.13 and 2.11 alike, pytorch/pytorch#100741) cannot read; the
// message gives the one-line conversion.
TEST(WeightImport, DitOfficialStateDictFileIsRefusedWithTheConversion) {
  test::TempDir dir;
  const std::string message = import_error(fixture("dit_official.pt"), dir.file("out.safetensors"));
  EXPECT_CONTAINS(message, "dit_official.pt: cannot read it as a torch.save file of {name: tensor} (");
  EXPECT_CONTAINS(message, "convert it once in Python: from safetensors.torch import save_file");
  EXPECT_FALSE(std::filesystem::exists(dir.file("out.safetensors")));
}

TEST(WeightImport, DitOfficialNamesTheFirstTensorThatDoesNotFit) {
  test::TempDir dir;
  auto contents = read_safetensors(fixture("dit_official.safetensors"));
  const auto variant = [&](const std::string& name, auto&& edit) {
    auto copy = contents;
    edit(copy.tensors);
    write_safetensors(dir.file(name), copy);
    return dir.file(name);
  };
  const std::string out = dir.file("out.safetensors");
  const auto missing = variant("missing.safetensors", [](auto& t) {
    t.erase(std::find_if(t.begin(), t.end(), [](const auto& e) { return e.first == "blocks.1.mlp.fc2.bias"; }));
  });
  EXPECT_CONTAINS(import_error(missing, out), "missing.safetensors: dit-official weights lack 'blocks.1.mlp.fc2.bias' (shape [128])");
  const auto extra = variant("extra.safetensors", [](auto& t) { t.emplace_back("blocks.0.attn.extra", torch::ones({2})); });
  EXPECT_CONTAINS(import_error(extra, out), "dit-official weight 'blocks.0.attn.extra' [2] has no place in the model found");
  const auto shape = variant("shape.safetensors", [](auto& t) {
    for (auto& e : t)
      if (e.first == "final_layer.adaLN_modulation.1.bias") e.second = torch::zeros({5});
  });
  EXPECT_CONTAINS(import_error(shape, out), "dit-official weight 'final_layer.adaLN_modulation.1.bias' has shape [5], expected [256]");
  const auto foreign = variant("foreign.safetensors", [](auto& t) { t = {{"conv_in.weight", torch::ones({2, 2, 3, 3})}}; });
  EXPECT_CONTAINS(import_error(foreign, out), "no 'x_embedder.proj.weight' tensor: not a DiT state dict of the DiT repository");
  test::write_file(dir.file("text.pt"), "not a pickle");
  EXPECT_CONTAINS(import_error(dir.file("text.pt"), out), "text.pt: cannot read it as a torch.save file of {name: tensor}");
  EXPECT_FALSE(std::filesystem::exists(out));
}

// diffusers' AutoencoderKL: encoding (posterior mean and log variance) and decoding match
// diffusers' own forward on a random model saved with save_pretrained; the file round-trips.
TEST(WeightImport, DiffusersVaeMatchesTheReferenceEncodeAndDecode) {
  test::TempDir dir;
  const ImportSummary summary =
      import_weights(request(ImportSource::diffusers_vae, fixture("diffusers_vae"), dir.file("vae.safetensors")));
  EXPECT_EQ(summary.description,
            "AutoencoderKL, channels [16, 32], 1 resnets per block, 4 latent channels (÷2), scaling factor 0.18215");
  AutoencoderKL vae = load_vae(dir.file("vae.safetensors"), torch::kCPU);
  EXPECT_EQ(vae->options().norm_num_groups, 8);  // from config.json: the shapes do not say
  const auto io = read_safetensors(fixture("diffusers_vae_io.safetensors"));
  torch::NoGradGuard no_grad;
  const auto [mean, logvar] = vae->encode(io.find("x"));
  EXPECT_LT((mean - io.find("mean")).abs().max().item<double>(), 1e-4);
  EXPECT_LT((logvar - io.find("logvar")).abs().max().item<double>(), 1e-4);
  const auto decoded = vae->decode(io.find("z"));
  ASSERT_EQ(decoded.sizes(), io.find("decoded").sizes());
  EXPECT_LT((decoded - io.find("decoded")).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(torch::allclose(vae->decode_scaled(vae->encode_scaled(io.find("x"))),
                              vae->decode(mean), 1e-4, 1e-5));
}

// The older attention names (query/key/value/proj_attn, as 1×1 convolutions in the LDM form)
// import to the same model.
TEST(WeightImport, DiffusersVaeReadsTheOlderAttentionNames) {
  test::TempDir dir;
  auto contents = read_safetensors(fixture("diffusers_vae/diffusion_pytorch_model.safetensors"));
  const std::pair<const char*, const char*> renames[] = {
      {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};
  int renamed = 0;
  for (auto& [name, tensor] : contents.tensors)
    for (const auto& [from, to] : renames)
      if (const auto pos = name.find(from); pos != std::string::npos) {
        name.replace(pos, std::strlen(from), to);
        if (tensor.dim() == 2) tensor = tensor.reshape({tensor.size(0), tensor.size(1), 1, 1});
        ++renamed;
      }
  EXPECT_EQ(renamed, 16);  // 4 projections × weight and bias × encoder and decoder
  write_safetensors(dir.file("old.safetensors"), contents);
  import_weights(request(ImportSource::diffusers_vae, dir.file("old.safetensors"), dir.file("vae.safetensors"),
                  fixture("diffusers_vae/config.json")));
  AutoencoderKL vae = load_vae(dir.file("vae.safetensors"), torch::kCPU);
  const auto io = read_safetensors(fixture("diffusers_vae_io.safetensors"));
  torch::NoGradGuard no_grad;
  EXPECT_LT((vae->decode(io.find("z")) - io.find("decoded")).abs().max().item<double>(), 1e-4);
  // Without config.json the group count falls back to the SD VAE's 32, which 16 channels do not take.
  EXPECT_CONTAINS(test::error_message<ConfigError>([&] {
                    import_weights(request(ImportSource::diffusers_vae, dir.file("old.safetensors"), dir.file("x.safetensors")));
                  }),
                  "vae: every block_out_channels entry must be a positive multiple of norm_num_groups (32), found 16");
  EXPECT_CONTAINS(test::error_message<CheckpointError>([&] { load_vae(fixture("dit_official.safetensors"), torch::kCPU); }),
                  "dit_official.safetensors: not a VAE file of diffuse");
}

namespace {

// Imports `weights` as `source`, loads the exported model back and checks our forward pass
// against the reference output in `io`.
LoadedModel import_and_compare(ImportSource source, const std::string& weights, const std::string& io_name,
                               const std::string& expected_description) {
  test::TempDir dir;
  const ImportSummary summary = import_weights(request(source, weights, dir.file("model.safetensors")));
  EXPECT_EQ(summary.description, expected_description);
  LoadedModel model = load_model_for_inference(dir.file("model.safetensors"), true, torch::kCPU);
  const auto io = read_safetensors(fixture(io_name));
  torch::NoGradGuard no_grad;
  const torch::Tensor labels = io.tensors.size() > 3 ? io.find("y") : torch::Tensor();
  const auto output = model.precond->net().forward(io.find("x"), io.find("t"), labels);
  const auto reference = io.find("output");
  EXPECT_EQ(output.sizes(), reference.sizes());
  if (output.sizes() == reference.sizes()) {
    EXPECT_LT((output - reference).abs().max().item<double>(), 1e-4) << "reference std " << reference.std().item<double>();
  }
  return model;
}

}  // namespace

// google/ddpm-cifar10-32's configuration (DDPM's [sin | cos] features with shift 1, GroupNorm
// ε 1e-6, bottom-right downsample padding, one head) from a pipeline folder: unet/ with the
// scheduler next to it.
TEST(WeightImport, DiffusersUnet2dInTheDdpmConfigurationMatchesTheReferenceForward) {
  const LoadedModel model = import_and_compare(
      ImportSource::diffusers_unet2d, fixture("diffusers_ddpm/unet"), "diffusers_ddpm_io.safetensors",
      "UNet2DModel, channels [16, 32], 1 resnets per level, attention at [4] px, 3×8×8 inputs, vp_linear 1000 steps, "
      "eps prediction");
  const auto& m = model.config.model;
  EXPECT_EQ(m.timestep.order, TimestepOrder::sin_cos);
  EXPECT_EQ(m.timestep.freq_shift, 1);
  EXPECT_EQ(m.unet.norm_eps, 1e-6);
  EXPECT_EQ(m.unet.downsample_padding, DownsamplePadding::bottom_right);
  EXPECT_EQ(m.unet.num_heads, 1);
  EXPECT_FALSE(m.unet.scale_shift_norm);
  EXPECT_TRUE(m.unet.middle_attention_norm);
  EXPECT_EQ(model.config.data.type, DatasetType::image_folder);
  EXPECT_EQ(model.config.data.resolution, 8);
}

// diffusers' defaults ([cos | sin], no shift, ε 1e-5, symmetric padding), scale-shift time
// conditioning, 4 channels a head, a learned variance, and a cosine v-prediction scheduler.
TEST(WeightImport, DiffusersUnet2dWithScaleShiftAndLearnedVarianceMatchesTheReferenceForward) {
  const LoadedModel model = import_and_compare(
      ImportSource::diffusers_unet2d, fixture("diffusers_ddpm_wide/unet/"), "diffusers_ddpm_wide_io.safetensors",
      "UNet2DModel, channels [8, 16, 16], 2 resnets per level, attention at [8] px, 1×8×8 inputs, learned variance, "
      "vp_cosine 1000 steps, v prediction");
  const auto& m = model.config.model;
  EXPECT_EQ(m.timestep.order, TimestepOrder::cos_sin);
  EXPECT_EQ(m.timestep.freq_shift, 0);
  EXPECT_EQ(m.unet.head_channels, 4);
  EXPECT_TRUE(m.unet.scale_shift_norm);
  EXPECT_FALSE(m.unet.middle_attention_norm);  // UNetMidBlock2D has none under scale-shift conditioning
  EXPECT_EQ(model.config.data.channels, 1);
}

TEST(WeightImport, DiffusersDitMatchesTheReferenceForward) {
  const LoadedModel model = import_and_compare(
      ImportSource::diffusers_dit, fixture("diffusers_dit/transformer"), "diffusers_dit_io.safetensors",
      "DiT depth 2, hidden 64, 2 heads, patch 2, 4×8×8 inputs, 3 classes, learned variance");
  EXPECT_EQ(model.config.model.timestep.freq_shift, 1);
  EXPECT_EQ(model.config.model.dit.mlp_norm_eps, 1e-5);
  EXPECT_EQ(model.config.data.type, DatasetType::latents);
}

// What the diffusers importers refuse, each with the file and the key or tensor.
TEST(WeightImport, DiffusersImportersNameWhatDoesNotFit) {
  test::TempDir dir;
  const std::string out = dir.file("out.safetensors");
  const auto error = [&](ImportSource source, const std::string& weights, const std::string& config = "") {
    return test::error_message<CheckpointError>([&] { import_weights(request(source, weights, out, config)); });
  };
  const std::string unet = fixture("diffusers_ddpm/unet/diffusion_pytorch_model.safetensors");
  EXPECT_CONTAINS(error(ImportSource::diffusers_unet2d, unet),
                  "diffusers-unet2d needs the model's config.json (sample_size, the timestep features and the GroupNorm ε "
                  "are not in the weights): pass the model folder as --weights, or --config");
  // One side of a level with attention, the other without.
  auto contents = read_safetensors(unet);
  auto& tensors = contents.tensors;
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [](const auto& e) { return e.first.rfind("up_blocks.0.attentions.", 0) == 0; }),
                tensors.end());
  write_safetensors(dir.file("asymmetric.safetensors"), contents);
  EXPECT_CONTAINS(error(ImportSource::diffusers_unet2d, dir.file("asymmetric.safetensors"),
                        fixture("diffusers_ddpm/unet/config.json")),
                  "asymmetric.safetensors: level 1 has attention in its down block but not in "
                  "'up_blocks.0.attentions.0.to_qkv.weight'");
  // A class-conditional UNet2DModel.
  test::write_file(dir.file("classes.json"), "{\"sample_size\": 8, \"class_embed_type\": \"timestep\"}");
  EXPECT_CONTAINS(error(ImportSource::diffusers_unet2d, unet, dir.file("classes.json")),
                  "classes.json: class_embed_type \"timestep\" is not supported by the diffusers-unet2d importer");
  // A diffusers DiT whose blocks carry different timestep embedders cannot be one DiT.
  auto dit = read_safetensors(fixture("diffusers_dit/transformer/diffusion_pytorch_model.safetensors"));
  for (auto& [name, tensor] : dit.tensors)
    if (name == "transformer_blocks.1.norm1.emb.timestep_embedder.linear_1.bias") tensor = tensor + 1;
  write_safetensors(dir.file("dit.safetensors"), dit);
  EXPECT_CONTAINS(error(ImportSource::diffusers_dit, dir.file("dit.safetensors"),
                        fixture("diffusers_dit/transformer/config.json")),
                  "'transformer_blocks.1.norm1.emb.timestep_embedder.linear_1.bias' differs from block 0's");
  EXPECT_CONTAINS(error(ImportSource::diffusers_dit, unet, fixture("diffusers_dit/transformer/config.json")),
                  "no 'pos_embed.proj.weight' tensor: not a diffusers DiTTransformer2DModel");
  test::write_file(dir.file("scheduler.json"), "{\"beta_schedule\": \"scaled_linear\"}");
  ImportOptions scaled = request(ImportSource::diffusers_unet2d, fixture("diffusers_ddpm/unet"), out);
  scaled.scheduler = dir.file("scheduler.json");
  EXPECT_CONTAINS(test::error_message<CheckpointError>([&] { import_weights(scaled); }),
                  "scheduler.json: beta_schedule 'scaled_linear' is not supported");
  EXPECT_FALSE(std::filesystem::exists(out));
}
