#pragma once
// Injected randomness (DESIGN §2): one generator per sample seed, so sample k gets the same
// noise whatever batch it lands in. The library never seeds or draws from global state.
#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace diffuse {

class SeededNoise {
 public:
  // One CPU generator per seed; tensors are drawn on the CPU then moved to `device`, so the
  // numbers are identical on every device.
  SeededNoise(const std::vector<uint64_t>& seeds, torch::Device device);

  int64_t batch_size() const { return static_cast<int64_t>(generators_.size()); }
  torch::Device device() const { return device_; }

  // [B, *sample_shape] standard normal; row k from generator k.
  torch::Tensor randn(torch::IntArrayRef sample_shape, torch::Dtype dtype = torch::kFloat32);
  // Same as randn(x.shape[1:]) with x's dtype.
  torch::Tensor randn_like(const torch::Tensor& x);
  // Uniform [0, 1) and Poisson draws with the same per-sample discipline.
  torch::Tensor rand(torch::IntArrayRef sample_shape, torch::Dtype dtype = torch::kFloat32);
  torch::Tensor poisson(const torch::Tensor& rates);

  // Returns the noise stream of samples [begin, end) (for splitting a batch).
  SeededNoise slice(int64_t begin, int64_t end) const;

 private:
  SeededNoise(torch::Device device, std::vector<torch::Generator> generators);
  std::vector<torch::Generator> generators_;
  torch::Device device_;
};

// splitmix64 (Steele, Lea & Flood 2014): the counter-based hash behind every derived seed
// (the loader's shuffles, dropout reseeding, measurement-noise streams).
uint64_t splitmix64(uint64_t x);
// The seed of stream `stream` of a sample seed: independent streams of one seed (e.g. the
// measurement noise and the sampling noise of one image) never correlate.
inline uint64_t derived_seed(uint64_t seed, uint64_t stream) { return splitmix64(seed ^ stream); }

// "0-63", "1,5,9", "0-3,10" → seed list (UsageError on bad text, naming `flag`).
std::vector<uint64_t> parse_seed_list(const std::string& text, const std::string& flag);
// Same syntax for class labels.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag);

}  // namespace diffuse
