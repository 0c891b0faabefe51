#pragma once
// Data parallelism on PyTorch's distributed engine, c10d (DESIGN §6): a TCPStore rendezvous at
// MASTER_ADDR:MASTER_PORT, then ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA) for the
// collectives. The processes are started by torchrun, SLURM's srun or `diffuse ... --nproc N`,
// which describe each one through the environment (distributed_env_from_environment).
//
// Failures never hang: every collective and every wait gives up after the timeout, and each
// rank keeps a heartbeat in the store, so that the error a surviving rank raises names the
// rank that died or stopped responding.
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/core/error.h"

namespace diffuse {

// A peer process died, hung or could not be reached; or the ranks disagree.
struct DistributedError : Error {
  using Error::Error;
};

// Who this process is in a distributed run.
struct DistributedEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // index among the processes of this machine: its GPU
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher;  // "torchrun" (RANK/WORLD_SIZE...), "slurm" (SLURM_PROCID...), or "" (one process)
  // torchrun's agent already hosts the store at MASTER_ADDR:MASTER_PORT
  // (TORCHELASTIC_USE_AGENT_STORE=True); otherwise rank 0 hosts it.
  bool agent_store = false;
};

// torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT when WORLD_SIZE is set;
// else SLURM's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID (with MASTER_ADDR, and MASTER_PORT
// defaulting to 29500) when SLURM_NTASKS is set; else one process. Throws DistributedError
// naming the variable for a value that is not a number or out of range.
DistributedEnv distributed_env_from_environment();

enum class DistributedBackend { automatic, gloo, nccl };

// Whether this build has `backend`: Gloo needs Gloo's headers at build time (Debian's
// libgloo-dev), NCCL a CUDA LibTorch with nccl.h. `automatic` asks for Gloo.
bool distributed_backend_built(DistributedBackend backend);

// "auto", "gloo" or "nccl"; throws UsageError naming `what` for anything else.
DistributedBackend parse_distributed_backend(const std::string& text, const std::string& what);

struct DistributedOptions {
  DistributedBackend backend = DistributedBackend::automatic;  // automatic: NCCL on CUDA, Gloo on CPU
  std::chrono::seconds timeout{300};  // longest wait for a peer: rendezvous, collectives, rank 0's work
};

// The device a rank computes on: CUDA devices become cuda:LOCAL_RANK in a distributed run.
torch::Device rank_device(torch::Device device, const DistributedEnv& env);

class Communicator {
 public:
  // An all-reduce in flight; wait() blocks until it is done (throws DistributedError).
  class Pending {
   public:
    Pending() = default;
    void wait();

   private:
    friend class Communicator;
    struct State;
    std::shared_ptr<State> state_;
  };

  // A world of one process: every collective is the identity.
  Communicator();
  // Joins the group of `env` (blocks until all world_size ranks have arrived, or the
  // timeout). `device` picks the automatic backend and is where the collectives' tensors live.
  Communicator(const DistributedEnv& env, torch::Device device, const DistributedOptions& options);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_root() const { return env_.rank == 0; }
  bool distributed() const { return env_.world_size > 1; }
  const DistributedEnv& env() const { return env_; }
  std::string backend_name() const;

  // Sums `tensor` over the ranks, in place. `what` names the collective in errors.
  void all_reduce_sum(torch::Tensor& tensor, const std::string& what);
  Pending all_reduce_sum_async(torch::Tensor tensor, const std::string& what);
  // Copies rank 0's values into every rank's tensors, in place.
  void broadcast_from_root(std::vector<torch::Tensor> tensors, const std::string& what);
  // [world_size · n, ...]: every rank's `local` ([n, ...], the same shape on every rank) in rank order.
  torch::Tensor all_gather(const torch::Tensor& local, const std::string& what);
  // Returns once every rank has called it.
  void barrier(const std::string& what);
  // Rank 0 marks `what` done; the other ranks wait until it has, for as long as rank 0's
  // heartbeat goes on (rank 0's work, e.g. writing a checkpoint or sample grids, may take
  // longer than the timeout; a rank 0 that died or froze does not).
  void root_done_then_others_continue(const std::string& what);
  // Throws the same ConfigError on every rank when `text` (e.g. the resolved config) is not
  // the same on all of them.
  void require_same(const std::string& what, const std::string& text);

 private:
  struct Impl;
  DistributedEnv env_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffuse
