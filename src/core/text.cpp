#include "diffuse/core/text.h"

namespace diffuse {

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  return join(items, sep, [](const std::string& item) -> const std::string& { return item; });
}

}  // namespace diffuse
