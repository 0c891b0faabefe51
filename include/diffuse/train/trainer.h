#pragma once
// The training loop (DESIGN §2, §4): AdamW with warm-up and constant/cosine LR, gradient
// clipping and accumulation, EMA, bf16 autocast on CUDA, periodic log lines, metrics.jsonl
// rows, sample grids from the EMA weights and atomic checkpoints; exact resume.
#include <atomic>
#include <memory>
#include <string>

#include "diffuse/config/experiment_config.h"
#include "diffuse/distributed/communicator.h"

namespace diffuse {

struct TrainerOptions {
  std::string resume;                              // checkpoint to continue from ("" = fresh)
  bool overwrite = false;  // a fresh run may replace the run already in run_dir
  const std::atomic<bool>* stop_requested = nullptr;  // set by SIGINT/SIGTERM handlers
  // Data-parallel training over these ranks (null: one process). Every rank calls train()
  // with the same config; train.batch_size is per rank, the global batch is
  // batch_size × world_size; rank 0 writes the run's files. A stop request on any rank stops
  // them all after the same step, with one checkpoint.
  Communicator* communicator = nullptr;
};

struct TrainResult {
  int64_t step = 0;          // optimizer steps done in total
  bool interrupted = false;  // stopped early by stop_requested (a checkpoint was written)
  double last_loss = 0.0;    // mean loss over the last logging window
  std::string last_checkpoint;
};

// Trains per `config`, writing into config.run_dir. Throws diffuse errors for bad data,
// configs or checkpoints.
TrainResult train(const ExperimentConfig& config, const TrainerOptions& options);

// Learning rate at optimizer step `step` (0-based): linear warm-up from 0, then constant or
// half-cosine down to min_lr at train.steps.
double learning_rate_at(const TrainOptions& options, int64_t step);

}  // namespace diffuse
