#pragma once
// Checkpoints (DESIGN §4): one file holding model, EMA, optimizer state, step, RNG and
// loader state, class names and the resolved YAML; written to a temp file and renamed.
// Loading a model for sampling is inference/loaded_model.h's load_model_for_inference.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace diffuse {

// Everything a training checkpoint holds besides the tensors of the modules.
struct CheckpointMeta {
  std::string config_yaml;               // resolved experiment config
  std::vector<std::string> class_names;
  int64_t step = 0;
  int64_t loader_epoch = 0;              // data stream position for exact resume:
  int64_t loader_position = 0;           // the sample of the epoch order the next batch starts at
  torch::Tensor rng_state;               // trainer's generator (σ, noise, label dropout)
  torch::Tensor default_rng_state;       // LibTorch's default CPU generator (dropout; rank 0's)
  torch::Tensor loss_window;             // summed loss of the logging window in progress ([] or [ranks])
  int64_t loss_window_steps = 0;         // steps in that window (0: none)
};

// Writes a checkpoint atomically (temp file in the same folder, then rename). `ema` and
// `optimizer` may be null.
void write_checkpoint(const std::string& path, const CheckpointMeta& meta,
                      const torch::nn::Module& model, const torch::nn::Module* ema,
                      torch::optim::Optimizer* optimizer);

// Every checkpoint file ends in a trailer holding the CRC-32 and length of all bytes before
// it (the LibTorch archive), so that any damaged, missing or appended byte is detected.
struct ChecksumReport {
  bool present = false;        // false: an older checkpoint without a trailer (not verified)
  uint32_t crc32 = 0;
  uint64_t archive_bytes = 0;
};

// Checks the trailer of `path` against its bytes; a CheckpointError names the file and what
// failed. A file without a trailer reports present = false (CheckpointReader then checks
// that the archive does not claim to have had one).
ChecksumReport verify_checkpoint_checksum(const std::string& path);
// "ok (CRC-32 1a2b3c4d of N bytes)" or "none (...)", for summaries.
std::string describe_checksum(const ChecksumReport& report);

// Reads a checkpoint; every failure is a CheckpointError naming the path.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path);
  const CheckpointMeta& meta() const { return meta_; }
  bool has_ema() const { return has_ema_; }
  const ChecksumReport& checksum() const { return checksum_; }
  // Copies section "model" or "ema" into `module`; a missing or extra key or a shape
  // mismatch names the first offending key and both shapes.
  void load_module(const std::string& section, torch::nn::Module& module);
  void load_optimizer(torch::optim::Optimizer& optimizer);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  torch::serialize::InputArchive archive_;
  CheckpointMeta meta_;
  ChecksumReport checksum_;
  bool has_ema_ = false;
};

}  // namespace diffuse
