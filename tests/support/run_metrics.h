#pragma once
// Reading what `diffuse train` wrote into a run folder, for the training tests.
#include <cstdint>
#include <filesystem>
#include <vector>

namespace diffuse::test {

// The "step" of every row of a metrics.jsonl, in file order.
std::vector<int64_t> metrics_steps(const std::filesystem::path& path);
// The "loss" of every row, in file order.
std::vector<double> metrics_losses(const std::filesystem::path& path);

}  // namespace diffuse::test
