#include "diffuse/models/unet.h"

#include "diffuse/core/error.h"

namespace diffuse {

std::shared_ptr<DiffusionNet> make_unet(const ModelOptions&) {
  throw ConfigError("model.arch 'unet' is not built yet");
}

}  // namespace diffuse
