#pragma once
// Copying a name → tensor map into a module, checked: shared by CheckpointReader (a
// checkpoint's "model"/"ema" section) and load_model_for_inference (an exported file).
#include <torch/torch.h>

#include <map>
#include <string>

namespace diffuse {

// Copies `weights` (name -> tensor) into the parameters and buffers of `module`; a missing
// or extra name or a shape mismatch is a CheckpointError naming the first offending key,
// prefixed by `where`.
void load_named_weights(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& weights,
                        const std::string& where);

}  // namespace diffuse
