#include "support/run_metrics.h"

#include <fstream>
#include <regex>
#include <string>

namespace diffuse::test {

std::vector<int64_t> metrics_steps(const std::filesystem::path& path) {
  std::ifstream in(path);
  const std::regex step_re(R"re("step": (\d+))re");
  std::vector<int64_t> steps;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, step_re)) steps.push_back(std::stoll(m[1]));
  }
  return steps;
}

}  // namespace diffuse::test
