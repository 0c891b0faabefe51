#include "args.h"

#include "diffuse/core/error.h"

namespace diffuse::cli {

int run_train(const std::vector<std::string>& argv) {
  Args args("train", "Not built yet.", {});
  if (!args.parse(argv)) return 0;
  throw Error("'diffuse train' is not built yet");
}

}  // namespace diffuse::cli
