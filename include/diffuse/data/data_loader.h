#pragma once
// An endless, seeded batch stream for step-based training. Every random choice is a pure
// function of the seed: the order of epoch e is a permutation drawn from (seed, e) and the
// horizontal flip of a sample from (seed, epoch, index). Background threads only compute
// batches ahead of time; the stream is therefore bit-identical for any number of workers
// and when restarted from a saved LoaderState (exact resume, DESIGN §4).
//
// Data parallelism: the stream is one of global batches of batch_size × world_size samples,
// the same on every rank, and rank r returns rows [r·batch_size, (r+1)·batch_size) of each.
// The state counts samples of the epoch order, so that a run can resume with another world
// size (or batch size) at the same place in the data.
#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "diffuse/core/seeded_noise.h"
#include "diffuse/data/dataset.h"

namespace diffuse {

struct LoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = true;
  bool drop_last = true;   // false: the last, shorter batch of an epoch is returned too
  bool hflip = false;      // random horizontal flip with probability 1/2
  uint64_t seed = 0;
  int num_workers = 2;     // 0: batches are built on the calling thread
  int prefetch_batches = 4;
  bool pin_memory = false; // batches in page-locked memory (CUDA builds, for non-blocking copies)
  int rank = 0;            // this process's shard of each global batch
  int world_size = 1;      // processes sharing the global batch (needs drop_last above 1)
};

struct LoaderState {
  int64_t epoch = 0;
  int64_t position = 0;  // index in the epoch order of the first sample of the next global batch
};

struct Batch {
  torch::Tensor images;  // [B, C, H, W] float32
  torch::Tensor labels;  // [B] int64
  torch::Tensor noise{};  // like images when the dataset couples each image with its noise; else undefined
};

// Loader options from the data section of a config (hflip, workers, prefetch).
LoaderOptions make_loader_options(const DataOptions& data, int64_t batch_size, uint64_t seed);

// The order in which epoch `epoch` visits a dataset of `size` items: a Fisher–Yates
// shuffle driven by splitmix64 of (seed, epoch), or 0..size-1 without shuffling.
std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch, bool shuffle);

// Whether sample `index` is flipped in epoch `epoch`.
bool flip_decision(uint64_t seed, int64_t epoch, int64_t index);

class DataLoader {
 public:
  // Throws DataError when drop_last is set and the dataset holds fewer items than a global
  // batch, or when `start` lies outside the dataset.
  DataLoader(std::shared_ptr<Dataset> dataset, LoaderOptions options, LoaderState start = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch; rethrows an exception raised while building it.
  Batch next();
  // The state of the batch the next call to next() returns (save it to resume there).
  LoaderState state() const;

  // Global batches in a full epoch.
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  const Dataset& dataset() const { return *dataset_; }

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };

  LoaderState state_at(int64_t sequence) const;
  Batch build(int64_t sequence, std::vector<int64_t>& order, int64_t& order_epoch) const;
  void work();

  std::shared_ptr<Dataset> dataset_;
  LoaderOptions options_;
  LoaderState start_;
  int64_t global_batch_;       // batch_size × world_size
  int64_t batches_per_epoch_;
  int64_t first_epoch_batches_;  // batches left in start_.epoch from start_.position

  int64_t consumed_ = 0;  // batches returned by next(), counted from `start_`
  std::vector<int64_t> local_order_;  // epoch order cache for num_workers == 0
  int64_t local_order_epoch_ = -1;

  mutable std::mutex mutex_;
  std::condition_variable ready_;  // a slot was filled
  std::condition_variable space_;  // the consumer advanced or the loader stops
  int64_t claimed_ = 0;            // next sequence number a worker will build
  std::map<int64_t, Slot> done_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace diffuse
