#include "args.h"

#include "diffuse/core/error.h"

namespace diffuse::cli {

int run_sample(const std::vector<std::string>& argv) {
  Args args("sample", "Not built yet.", {});
  if (!args.parse(argv)) return 0;
  throw Error("'diffuse sample' is not built yet");
}

}  // namespace diffuse::cli
