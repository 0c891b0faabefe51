#pragma once
// The CLI side of data parallelism: the flags of the commands that run on several processes
// (train, sample), the local launcher behind --nproc, and joining the ranks.
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "args.h"
#include "diffuse/distributed/communicator.h"

namespace diffuse::cli {

// `flags` and --nproc, --dist-backend, --dist-timeout.
std::vector<FlagSpec> with_distributed_flags(std::vector<FlagSpec> flags);

// With --nproc N: starts N workers on this machine, each running `command` with `argv`
// minus --nproc, with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR
// 127.0.0.1, MASTER_PORT a free port unless set); forwards SIGINT/SIGTERM to them, stops the
// others when one fails, and returns the first failing worker's exit code (0 when all
// succeed). Without --nproc: nullopt (the caller runs the command itself).
std::optional<int> launch_local_workers_if_asked(const Args& args, const std::string& command,
                                                 const std::vector<std::string>& argv);

// A TCP port of 127.0.0.1 that nothing listens on now (the kernel's pick for port 0): the
// MASTER_PORT of --nproc. Throws Error when there is none.
int free_local_port();

// This process's place among the ranks (from the launcher's environment): a world of one
// without a launcher. In a distributed run, log lines carry the rank and ranks above 0 log
// warnings only (unless --log-level is given).
std::unique_ptr<Communicator> join_ranks(const Args& args, torch::Device device);

}  // namespace diffuse::cli
