#include "support/run_metrics.h"

#include <fstream>
#include <regex>
#include <string>

namespace diffuse::test {

namespace {

// The text after `"key": ` of every row that has the key.
std::vector<std::string> column(const std::filesystem::path& path, const std::string& key) {
  std::ifstream in(path);
  const std::regex value_re("\"" + key + "\": ([-+0-9.eE]+)");
  std::vector<std::string> values;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, value_re)) values.push_back(m[1]);
  }
  return values;
}

}  // namespace

std::vector<int64_t> metrics_steps(const std::filesystem::path& path) {
  std::vector<int64_t> steps;
  for (const auto& text : column(path, "step")) steps.push_back(std::stoll(text));
  return steps;
}

std::vector<double> metrics_values(const std::filesystem::path& path, const std::string& key) {
  std::vector<double> values;
  for (const auto& text : column(path, key)) values.push_back(std::stod(text));
  return values;
}

std::vector<double> metrics_losses(const std::filesystem::path& path) { return metrics_values(path, "loss"); }

}  // namespace diffuse::test
