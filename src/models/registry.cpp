#include "diffuse/models/registry.h"

#include "diffuse/core/error.h"
#include "diffuse/core/text.h"
#include "diffuse/models/classifier.h"
#include "diffuse/models/dit.h"
#include "diffuse/models/unet.h"

namespace diffuse {
namespace {

void unet_ddpm_cifar10(ModelOptions& m) {
  // Ho et al. 2020, Appendix B: 128 channels, multipliers 1,2,2,2, two residual blocks per
  // resolution, self-attention at 16×16, dropout 0.1 (35.7M parameters at 32×32×3).
  m.arch = ModelArch::unet;
  m.unet.base_channels = 128;
  m.unet.channel_mult = {1, 2, 2, 2};
  m.unet.num_res_blocks = 2;
  m.unet.attention_resolutions = {16};
  m.unet.num_heads = 1;
  m.unet.head_channels = -1;
  m.unet.dropout = 0.1;
  m.unet.scale_shift_norm = false;
  m.unet.resblock_updown = false;
}

void unet_small(ModelOptions& m) {
  // A few-million-parameter UNet that trains on a 2-core CPU (28×28 or 32×32 inputs).
  m.arch = ModelArch::unet;
  m.unet.base_channels = 32;
  m.unet.channel_mult = {1, 2, 2};
  m.unet.num_res_blocks = 1;
  m.unet.attention_resolutions = {7, 8};
  m.unet.num_heads = 4;
  m.unet.head_channels = -1;
  m.unet.dropout = 0.0;
  m.unet.scale_shift_norm = true;
  m.unet.resblock_updown = false;
}

template <int Depth, int Hidden, int Heads, int Patch>
void dit(ModelOptions& m) {
  // Peebles & Xie 2023, Table 1.
  m.arch = ModelArch::dit;
  m.dit.depth = Depth;
  m.dit.hidden_size = Hidden;
  m.dit.num_heads = Heads;
  m.dit.patch_size = Patch;
  m.dit.mlp_ratio = 4.0;
}

}  // namespace

const std::vector<ModelPreset>& model_presets() {
  static const std::vector<ModelPreset> presets = {
      {"ddpm_cifar10", ModelArch::unet, "DDPM CIFAR-10 UNet (Ho et al. 2020), 35.7M", unet_ddpm_cifar10},
      {"unet_small", ModelArch::unet, "small UNet for CPU training", unet_small},
      {"dit_s_2", ModelArch::dit, "DiT-S/2", dit<12, 384, 6, 2>},
      {"dit_s_4", ModelArch::dit, "DiT-S/4", dit<12, 384, 6, 4>},
      {"dit_s_8", ModelArch::dit, "DiT-S/8", dit<12, 384, 6, 8>},
      {"dit_b_2", ModelArch::dit, "DiT-B/2", dit<12, 768, 12, 2>},
      {"dit_b_4", ModelArch::dit, "DiT-B/4", dit<12, 768, 12, 4>},
      {"dit_b_8", ModelArch::dit, "DiT-B/8", dit<12, 768, 12, 8>},
      {"dit_l_2", ModelArch::dit, "DiT-L/2", dit<24, 1024, 16, 2>},
      {"dit_l_4", ModelArch::dit, "DiT-L/4", dit<24, 1024, 16, 4>},
      {"dit_l_8", ModelArch::dit, "DiT-L/8", dit<24, 1024, 16, 8>},
      {"dit_xl_2", ModelArch::dit, "DiT-XL/2", dit<28, 1152, 16, 2>},
      {"dit_xl_4", ModelArch::dit, "DiT-XL/4", dit<28, 1152, 16, 4>},
      {"dit_xl_8", ModelArch::dit, "DiT-XL/8", dit<28, 1152, 16, 8>},
  };
  return presets;
}

void apply_model_preset(const std::string& preset, ModelOptions& model) {
  const auto* found = find_by_name(model_presets(), preset);
  if (!found)
    throw ConfigError("unknown model preset '" + preset + "'; valid presets: " + join(names_of(model_presets())));
  found->apply(model);
}

ModelOptions resolve_model_options(ModelOptions options, int64_t channels, int64_t image_size,
                                   int64_t dataset_classes) {
  if (options.in_channels == 0) options.in_channels = static_cast<int>(channels);
  if (options.image_size == 0) options.image_size = static_cast<int>(image_size);
  if (options.num_classes < 0) options.num_classes = static_cast<int>(dataset_classes);
  return options;
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

int64_t count_model_parameters(const ModelOptions& options) {
  torch::NoGradGuard no_grad;
  if (options.arch == ModelArch::classifier) return count_parameters(*make_classifier(options));
  if (options.arch == ModelArch::dit && options.dit.depth > 1) {
    ModelOptions shallow = options;
    shallow.dit.depth = 1;
    auto net = make_model(shallow);
    auto children = net->named_children();
    if (!children.contains("blocks") || children["blocks"]->children().size() != 1)
      throw std::logic_error("count_model_parameters: DiT has no single 'blocks' entry");
    const auto block = children["blocks"]->children().front();
    return count_parameters(*net) + (options.dit.depth - 1) * count_parameters(*block);
  }
  return count_parameters(*make_model(options));
}

std::shared_ptr<DiffusionNet> make_model(const ModelOptions& options) {
  if (options.in_channels < 1 || options.image_size < 1 || options.num_classes < 0)
    throw ConfigError("model options are not resolved (in_channels " +
                      std::to_string(options.in_channels) + ", image_size " +
                      std::to_string(options.image_size) + ", num_classes " +
                      std::to_string(options.num_classes) + "); call resolve_model_options first");
  switch (options.arch) {
    case ModelArch::unet: return make_unet(options);
    case ModelArch::dit: return make_dit(options);
    case ModelArch::classifier:
      throw ConfigError("model.arch 'classifier' is a classifier, not a diffusion network: train it "
                        "with diffuse train and use it with diffuse sample --classifier");
  }
  throw std::logic_error("make_model: unhandled architecture");
}

}  // namespace diffuse
