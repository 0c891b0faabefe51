// The launch environment (torchrun, SLURM, bad values) and GradientSync's mean gradients,
// checked with two ranks of a real Gloo group in one process (one thread per rank).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <thread>

#include "diffuse/distributed/communicator.h"
#include "diffuse/distributed/gradient_sync.h"
#include "distributed_launch.h"
#include "support/expect_text.h"

using namespace diffuse;

namespace {

const char* const kLaunchVariables[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                                        "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NNODES",
                                        "TORCHELASTIC_USE_AGENT_STORE"};

// Sets exactly `values` among the launch variables for the scope, then restores them.
class LaunchEnvironment {
 public:
  explicit LaunchEnvironment(const std::map<std::string, std::string>& values) {
    for (const char* name : kLaunchVariables) {
      const char* old = std::getenv(name);
      saved_[name] = old ? std::optional<std::string>(old) : std::nullopt;
      ::unsetenv(name);
    }
    for (const auto& [name, value] : values) ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~LaunchEnvironment() {
    for (const auto& [name, value] : saved_) {
      if (value) ::setenv(name.c_str(), value->c_str(), 1);
      else ::unsetenv(name.c_str());
    }
  }

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

std::string env_error(const std::map<std::string, std::string>& values) {
  LaunchEnvironment env(values);
  try {
    distributed_env_from_environment();
  } catch (const DistributedError& e) {
    return e.what();
  }
  return "";
}


}  // namespace

TEST(DistributedEnv, NoLauncherIsOneProcess) {
  LaunchEnvironment env({});
  const auto e = distributed_env_from_environment();
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.launcher, "");
}

TEST(DistributedEnv, ReadsTorchrunsVariables) {
  LaunchEnvironment env({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.2"},
                         {"MASTER_PORT", "29511"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  const auto e = distributed_env_from_environment();
  EXPECT_EQ(e.launcher, "torchrun");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "10.0.0.2");
  EXPECT_EQ(e.master_port, 29511);
  EXPECT_TRUE(e.agent_store);
  EXPECT_EQ(rank_device(torch::Device("cuda:0"), e), torch::Device("cuda:1"));
  EXPECT_EQ(rank_device(torch::kCPU, e), torch::Device(torch::kCPU));
}

TEST(DistributedEnv, ReadsSlurmsVariablesOnOneNode) {
  LaunchEnvironment env({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "3"}, {"SLURM_NNODES", "1"}});
  const auto e = distributed_env_from_environment();
  EXPECT_EQ(e.launcher, "slurm");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 3);
  EXPECT_EQ(e.master_addr, "127.0.0.1");
  EXPECT_EQ(e.master_port, 29500);
}

TEST(DistributedEnv, BadValuesNameTheVariable) {
  EXPECT_CONTAINS(env_error({{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "h"}}),
                  "RANK=2: expected an integer in [0, 1]");
  EXPECT_CONTAINS(env_error({{"WORLD_SIZE", "two"}}), "WORLD_SIZE=two: expected an integer");
  EXPECT_CONTAINS(env_error({{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}), "RANK is not set");
  EXPECT_CONTAINS(env_error({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}),
                  "MASTER_PORT=70000: expected an integer in [1, 65535]");
  EXPECT_CONTAINS(env_error({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}, {"SLURM_NNODES", "2"}}),
                  "MASTER_ADDR is not set");
  EXPECT_THROW(parse_distributed_backend("mpi", "--dist-backend"), UsageError);
}

// Each rank runs two micro-batches on its own inputs; only the second is armed. Afterwards
// both ranks hold the mean over the ranks of their accumulated gradients, and the parameter
// that took no part keeps no gradient. Buckets of 64 bytes put the parameters in several
// buckets.
TEST(GradientSync, EveryRankGetsTheMeanOfTheAccumulatedGradients) {
  if (!distributed_backend_built(DistributedBackend::gloo)) GTEST_SKIP() << "this build has no Gloo (libgloo-dev)";
  const int port = cli::free_local_port();
  // Deterministic values (the threads must not share a random generator).
  auto make_params = [] {
    auto values = [](std::vector<int64_t> shape, double k) {
      int64_t n = 1;
      for (const auto d : shape) n *= d;
      return torch::sin(torch::arange(n, torch::kFloat32) * k + 1.0).view(shape).requires_grad_();
    };
    return std::vector<torch::Tensor>{values({4, 3}, 0.7), values({4}, 1.3), values({5}, 0.2), values({2, 4}, 2.1)};
  };
  auto loss_of = [](const std::vector<torch::Tensor>& p, const torch::Tensor& x) {
    // p[2] is never used.
    return torch::matmul(p[3], torch::tanh(torch::matmul(p[0], x) + p[1])).square().sum();
  };
  auto input = [](int rank, int micro) { return torch::full({3}, 0.5 + rank + 0.25 * micro); };
  // The expected mean: every rank's two micro-batches, without any communication.
  auto reference = make_params();
  for (int rank = 0; rank < 2; ++rank)
    for (int micro = 0; micro < 2; ++micro) loss_of(reference, input(rank, micro)).backward();

  std::vector<std::vector<torch::Tensor>> grads(2);
  std::vector<std::string> errors(2);
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 2; ++rank)
    ranks.emplace_back([&, rank] {
      try {
        DistributedEnv env;
        env.rank = rank;
        env.world_size = 2;
        env.master_port = port;
        DistributedOptions options;
        options.timeout = std::chrono::seconds(60);
        Communicator communicator(env, torch::kCPU, options);
        auto params = make_params();
        GradientSync sync(params, communicator, /*bucket_bytes=*/64);
        for (int micro = 0; micro < 2; ++micro) {
          if (micro == 1) sync.arm();
          loss_of(params, input(rank, micro)).backward();
        }
        sync.finish();
        for (const auto& p : params) grads[static_cast<size_t>(rank)].push_back(p.grad());
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(rank)] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  ASSERT_EQ(errors[0], "");
  ASSERT_EQ(errors[1], "");
  for (int rank = 0; rank < 2; ++rank) {
    const auto& g = grads[static_cast<size_t>(rank)];
    ASSERT_EQ(g.size(), 4u);
    EXPECT_FALSE(g[2].defined()) << "rank " << rank;
    for (size_t i : {0u, 1u, 3u}) {
      ASSERT_TRUE(g[i].defined()) << "rank " << rank << " parameter " << i;
      EXPECT_TRUE(torch::allclose(g[i], reference[i].grad() / 2.0, 1e-6, 1e-6)) << "rank " << rank << " parameter " << i;
    }
  }
  for (size_t i : {0u, 1u, 3u}) EXPECT_TRUE(torch::equal(grads[0][i], grads[1][i])) << "parameter " << i;
}
