#include "diffuse/core/seeded_noise.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "diffuse/core/device_copy.h"
#include "diffuse/core/error.h"

namespace diffuse {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;  // the golden gamma
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

SeededNoise::SeededNoise(const std::vector<uint64_t>& seeds, torch::Device device)
    : device_(device) {
  generators_.reserve(seeds.size());
  for (uint64_t seed : seeds) generators_.push_back(at::make_generator<at::CPUGeneratorImpl>(seed));
}

SeededNoise::SeededNoise(torch::Device device, std::vector<torch::Generator> generators)
    : generators_(std::move(generators)), device_(device) {}

namespace {
template <class Draw>
torch::Tensor per_sample(std::vector<torch::Generator>& generators, torch::IntArrayRef shape,
                         torch::Dtype dtype, torch::Device device, Draw draw) {
  std::vector<torch::Tensor> rows;
  rows.reserve(generators.size());
  auto options = torch::TensorOptions().dtype(torch::kFloat32);
  for (auto& g : generators) rows.push_back(draw(shape, g, options));
  return copy_to_device(torch::stack(rows), device).to(dtype);
}
}  // namespace

torch::Tensor SeededNoise::randn(torch::IntArrayRef sample_shape, torch::Dtype dtype) {
  return per_sample(generators_, sample_shape, dtype, device_,
                    [](torch::IntArrayRef s, torch::Generator& g, const torch::TensorOptions& o) {
                      return torch::randn(s, g, o);
                    });
}

torch::Tensor SeededNoise::rand(torch::IntArrayRef sample_shape, torch::Dtype dtype) {
  return per_sample(generators_, sample_shape, dtype, device_,
                    [](torch::IntArrayRef s, torch::Generator& g, const torch::TensorOptions& o) {
                      return torch::rand(s, g, o);
                    });
}

torch::Tensor SeededNoise::randn_like(const torch::Tensor& x) {
  return randn(x.sizes().slice(1), x.scalar_type());
}

torch::Tensor SeededNoise::poisson(const torch::Tensor& rates) {
  auto cpu = rates.to(torch::kCPU, torch::kFloat32);
  std::vector<torch::Tensor> rows;
  for (int64_t k = 0; k < batch_size(); ++k)
    rows.push_back(at::poisson(cpu[k], generators_[static_cast<size_t>(k)]));
  return torch::stack(rows).to(rates.device(), rates.scalar_type());
}

SeededNoise SeededNoise::slice(int64_t begin, int64_t end) const {
  return SeededNoise(device_, std::vector<torch::Generator>(generators_.begin() + begin,
                                                            generators_.begin() + end));
}

namespace {
template <class T>
std::vector<T> parse_ranges(const std::string& text, const std::string& flag, bool allow_negative) {
  std::vector<T> out;
  std::stringstream ss(text);
  auto bad = [&](const std::string& part) {
    return UsageError(flag + ": cannot read '" + part + "' in '" + text +
                      "'; expected numbers and ranges like 0-63 or 1,5,9");
  };
  auto number = [&](const std::string& s, const std::string& part) {
    if (s.empty()) throw bad(part);
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno == ERANGE) throw UsageError(flag + ": number '" + s + "' does not fit in 64 bits");
    if (*end != '\0' || (!allow_negative && v < 0)) throw bad(part);
    return static_cast<T>(v);
  };
  for (std::string part; std::getline(ss, part, ',');) {
    const auto dash = part.find('-', 1);
    if (dash == std::string::npos) {
      out.push_back(number(part, part));
      continue;
    }
    const T lo = number(part.substr(0, dash), part);
    const T hi = number(part.substr(dash + 1), part);
    if (hi < lo) throw bad(part);
    if (hi - lo > 10000000) throw UsageError(flag + ": range '" + part + "' is too long");
    for (T v = lo; v <= hi; ++v) out.push_back(v);
  }
  if (out.empty()) throw bad(text);
  return out;
}
}  // namespace

std::vector<uint64_t> parse_seed_list(const std::string& text, const std::string& flag) {
  return parse_ranges<uint64_t>(text, flag, false);
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag) {
  return parse_ranges<int64_t>(text, flag, false);
}

}  // namespace diffuse
