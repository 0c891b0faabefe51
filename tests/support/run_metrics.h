#pragma once
// Reading what `diffuse train` wrote into a run folder, for the training tests.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace diffuse::test {

// The "step" of every row of a metrics.jsonl, in file order.
std::vector<int64_t> metrics_steps(const std::filesystem::path& path);
// The numeric value of `key` in every row that has it, in file order.
std::vector<double> metrics_values(const std::filesystem::path& path, const std::string& key);
// The "loss" of every row, in file order.
std::vector<double> metrics_losses(const std::filesystem::path& path);

}  // namespace diffuse::test
