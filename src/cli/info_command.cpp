#include "args.h"

#include "diffuse/core/error.h"

namespace diffuse::cli {

int run_info(const std::vector<std::string>& argv) {
  Args args("info", "Not built yet.", {});
  if (!args.parse(argv)) return 0;
  throw Error("'diffuse info' is not built yet");
}

}  // namespace diffuse::cli
