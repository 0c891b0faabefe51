#include "args.h"

#include "diffuse/core/error.h"

namespace diffuse::cli {

int run_restore(const std::vector<std::string>& argv) {
  Args args("restore", "Not built yet.", {});
  if (!args.parse(argv)) return 0;
  throw Error("'diffuse restore' is not built yet");
}

}  // namespace diffuse::cli
