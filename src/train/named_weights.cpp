#include "train/named_weights.h"

#include "diffuse/core/error.h"
#include "diffuse/core/shape_text.h"

namespace diffuse {

void load_named_weights(torch::nn::Module& module, const std::map<std::string, torch::Tensor>& weights,
                        const std::string& where) {
  torch::NoGradGuard no_grad;
  auto copy = [&](const std::string& name, const torch::Tensor& target) {
    const auto it = weights.find(name);
    if (it == weights.end())
      throw CheckpointError(where + " weights lack '" + name + "' (shape " + shape_text(target.sizes()) +
                            "): the checkpoint was trained with a different architecture");
    if (it->second.sizes() != target.sizes())
      throw CheckpointError(where + " weight '" + name + "' has shape " + shape_text(it->second.sizes()) +
                            " in the checkpoint but " + shape_text(target.sizes()) + " in the model: the architecture differs");
    target.copy_(it->second);
  };
  const auto params = module.named_parameters(true);
  const auto buffers = module.named_buffers(true);
  for (auto& p : params) copy(p.key(), p.value());
  for (auto& b : buffers) copy(b.key(), b.value());
  if (weights.size() != params.size() + buffers.size())
    for (const auto& [key, tensor] : weights)
      if (!params.contains(key) && !buffers.contains(key))
        throw CheckpointError(where + " weight '" + key +
                              "' in the checkpoint has no place in the model: the architecture differs");
}

}  // namespace diffuse
