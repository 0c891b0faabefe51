#include "diffuse/models/dit.h"

#include "diffuse/core/error.h"

namespace diffuse {

std::shared_ptr<DiffusionNet> make_dit(const ModelOptions&) {
  throw ConfigError("model.arch 'dit' is not built yet");
}

}  // namespace diffuse
