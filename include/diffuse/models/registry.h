#pragma once
// The model zoo as one const name table (DESIGN §2): presets fill ModelOptions, and
// make_model builds the network for resolved options.
#include <memory>
#include <string>
#include <vector>

#include "diffuse/models/diffusion_net.h"

namespace diffuse {

struct ModelPreset {
  const char* name;
  ModelArch arch;
  const char* description;
  void (*apply)(ModelOptions&);
};

const std::vector<ModelPreset>& model_presets();

// Fills the model preset's values into `model` (throws ConfigError for an unknown preset,
// listing the valid ones).
void apply_model_preset(const std::string& preset, ModelOptions& model);

// Builds the network. `options` must be resolved (in_channels, image_size > 0,
// num_classes >= 0); throws ConfigError when the options do not fit together (e.g. an
// image size not divisible by the patch size), naming the keys.
std::shared_ptr<DiffusionNet> make_model(const ModelOptions& options);

// Resolves the "from the dataset" values (0 / -1) against the dataset's shape and classes.
ModelOptions resolve_model_options(ModelOptions options, int64_t channels, int64_t image_size,
                                   int64_t dataset_classes);

int64_t count_parameters(const torch::nn::Module& module);

// The trainable parameter count of make_model(options) without allocating the whole network
// (DiT-XL/2 holds 675M parameters, 2.7 GB): DiT blocks are identical, so a depth-1 model plus
// (depth - 1) copies of its block give the exact count. UNets are built in full.
int64_t count_model_parameters(const ModelOptions& options);

}  // namespace diffuse
