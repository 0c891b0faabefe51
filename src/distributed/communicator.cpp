#include "diffuse/distributed/communicator.h"

#include <spdlog/spdlog.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#if defined(DIFFUSE_WITH_GLOO)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if defined(DIFFUSE_WITH_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>

#include "diffuse/core/compat.h"
#include "diffuse/core/text.h"

namespace diffuse {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kHeartbeatPeriod = std::chrono::milliseconds(500);
// A peer whose heartbeat has not moved for this long is taken for dead or frozen.
constexpr auto kHeartbeatSilence = std::chrono::seconds(3);

std::optional<std::string> env_var(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

int env_int(const char* name, int lo, int hi, std::optional<int> fallback) {
  const auto text = env_var(name);
  if (!text) {
    if (fallback) return *fallback;
    throw DistributedError(std::string(name) + " is not set; the launcher (torchrun, srun or --nproc) sets it");
  }
  size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(*text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text->size() || value < lo || value > hi)
    throw DistributedError(std::string(name) + "=" + *text + ": expected an integer in [" + std::to_string(lo) +
                           ", " + std::to_string(hi) + "]");
  return static_cast<int>(value);
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string heartbeat_key(int rank) { return "diffuse/heartbeat/" + std::to_string(rank); }

// "1" or "1, 3".
std::string rank_list(const std::vector<int>& ranks) { return join(ranks, ", "); }

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

// FNV-1a (64 bit): the fingerprint ranks compare instead of whole configs.
std::string fingerprint(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const unsigned char c : text) h = (h ^ c) * 0x100000001b3ULL;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

}  // namespace

DistributedEnv distributed_env_from_environment() {
  DistributedEnv env;
  constexpr int kMaxRanks = 1 << 20;
  bool several_nodes = false;
  if (env_var("WORLD_SIZE")) {
    env.launcher = "torchrun";
    env.world_size = env_int("WORLD_SIZE", 1, kMaxRanks, std::nullopt);
    env.rank = env_int("RANK", 0, env.world_size - 1, env.world_size == 1 ? std::optional<int>(0) : std::nullopt);
    env.local_rank = env_int("LOCAL_RANK", 0, kMaxRanks, 0);
    env.agent_store = env_var("TORCHELASTIC_USE_AGENT_STORE").value_or("") == "True";
    several_nodes = true;  // torchrun always sets MASTER_ADDR; require it
  } else if (env_var("SLURM_NTASKS") && env_var("SLURM_PROCID")) {
    env.launcher = "slurm";
    env.world_size = env_int("SLURM_NTASKS", 1, kMaxRanks, std::nullopt);
    env.rank = env_int("SLURM_PROCID", 0, env.world_size - 1, std::nullopt);
    env.local_rank = env_int("SLURM_LOCALID", 0, kMaxRanks, 0);
    several_nodes = env_int("SLURM_NNODES", 1, kMaxRanks, 1) > 1;
  } else {
    return env;
  }
  if (env.world_size == 1) return env;
  if (const auto addr = env_var("MASTER_ADDR")) {
    env.master_addr = *addr;
  } else if (several_nodes) {
    throw DistributedError("MASTER_ADDR is not set: give every rank the address of rank 0's machine (under SLURM: "
                           "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1))");
  }
  env.master_port = env_int("MASTER_PORT", 1, 65535, 29500);
  return env;
}

bool distributed_backend_built(DistributedBackend backend) {
#if defined(DIFFUSE_WITH_NCCL)
  if (backend == DistributedBackend::nccl) return true;
#endif
#if defined(DIFFUSE_WITH_GLOO)
  if (backend != DistributedBackend::nccl) return true;
#endif
  return false;
}

DistributedBackend parse_distributed_backend(const std::string& text, const std::string& what) {
  if (text == "auto") return DistributedBackend::automatic;
  if (text == "gloo") return DistributedBackend::gloo;
  if (text == "nccl") return DistributedBackend::nccl;
  throw UsageError(what + " '" + text + "': expected auto, gloo or nccl");
}

torch::Device rank_device(torch::Device device, const DistributedEnv& env) {
  if (env.world_size > 1 && device.is_cuda()) return torch::Device(torch::kCUDA, static_cast<int8_t>(env.local_rank));
  return device;
}

namespace {

// Liveness: a thread with its own store connection raises this rank's counter every
// kHeartbeatPeriod, reads every other rank's, and watches for the key rank 0 sets when its
// own work is done. The main thread only reads what the thread last saw, so no store
// request of the main thread can hang on a frozen store host (a TCPStore request to a
// stopped server never returns); the thread is left behind in that case.
struct Heartbeat {
  explicit Heartbeat(int ranks) : last_change(static_cast<size_t>(ranks)), counts(static_cast<size_t>(ranks), -1) {}

  std::mutex mutex;  // guards everything below; never held across a store request
  std::condition_variable wake;
  bool stopping = false, finished = false;
  Clock::time_point last_round;              // the last full round of store requests
  std::vector<Clock::time_point> last_change;  // per rank: when its counter last moved
  std::vector<int64_t> counts;
  std::string watched;  // the key root_done_then_others_continue waits for
  bool watched_seen = false;

  // Ranks other than `self` whose counters stood still for kHeartbeatSilence; -1 in the
  // list means the store itself stopped answering.
  std::vector<int> silent(int self) {
    std::lock_guard<std::mutex> lock(mutex);
    const auto now = Clock::now();
    if (now - last_round > kHeartbeatSilence) return {-1};
    std::vector<int> out;
    for (size_t r = 0; r < counts.size(); ++r)
      if (static_cast<int>(r) != self && now - last_change[r] > kHeartbeatSilence) out.push_back(static_cast<int>(r));
    return out;
  }

  static void run(const std::shared_ptr<Heartbeat>& self, c10::intrusive_ptr<c10d::Store> store, int rank) {
    std::unique_lock<std::mutex> lock(self->mutex);
    while (!self->stopping) {
      const std::string watched = self->watched_seen ? std::string() : self->watched;
      lock.unlock();
      std::vector<int64_t> counts(self->counts.size());
      bool seen = false;
      try {
        store->add(heartbeat_key(rank), 1);
        for (size_t r = 0; r < counts.size(); ++r) counts[r] = store->add(heartbeat_key(static_cast<int>(r)), 0);
        seen = !watched.empty() && store->check({watched});
      } catch (const std::exception&) {
        lock.lock();
        break;  // the store's host is gone; silent() reports it once kHeartbeatSilence has passed
      }
      lock.lock();
      const auto now = Clock::now();
      self->last_round = now;
      for (size_t r = 0; r < counts.size(); ++r)
        if (counts[r] != self->counts[r]) {
          self->counts[r] = counts[r];
          self->last_change[r] = now;
        }
      if (seen && watched == self->watched) self->watched_seen = true;
      self->wake.notify_all();
      self->wake.wait_for(lock, kHeartbeatPeriod, [&] { return self->stopping; });
    }
    self->finished = true;
    self->wake.notify_all();
  }
};

}  // namespace

struct Communicator::Impl {
  DistributedEnv env;
  DistributedOptions options;
  torch::Device device{torch::kCPU};  // where the backend's tensors live
  std::string backend;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<compat::C10dBackend> group;
  int64_t done_count = 0;  // root_done_then_others_continue calls so far (the same on every rank)

  c10::intrusive_ptr<c10d::Store> beat_store;  // the heartbeat thread's own connection
  std::shared_ptr<Heartbeat> heartbeat;        // shared with that thread, which may outlive us

  void connect_store();
  void connect_group();
  std::string peer_report();
  [[noreturn]] void fail(const std::string& what, const std::string& cause);
  void wait(c10d::Work& work, const std::string& what);
};

void Communicator::Impl::connect_store() {
  // LibTorch 2.x store servers (torchrun's agent) wait for a handshake that 1.13 clients never
  // send, so a 1.13 build cannot use the agent's store; its rank 0 hosts one on the next port.
  if (env.agent_store && !DIFFUSE_TORCH2) {
    spdlog::info("LibTorch {} cannot use torchrun's store at {}:{}; rank 0 hosts diffuse's own at port {}",
                 compat::torch_version(), env.master_addr, env.master_port, env.master_port + 1);
    env.agent_store = false;
    env.master_port += 1;
  }
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(env.master_port);
  o.isServer = env.rank == 0 && !env.agent_store;
  if (!env.agent_store) o.numWorkers = static_cast<size_t>(env.world_size);
  o.waitWorkers = !env.agent_store;
  o.timeout = options.timeout;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  try {
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
    o.isServer = false;
    o.numWorkers = decltype(o.numWorkers)();
    o.waitWorkers = false;
    beat_store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
  } catch (const std::exception& e) {
    throw DistributedError("rank " + std::to_string(env.rank) + ": the rendezvous at " + where + " failed (" +
                           first_line(e.what()) + "); are all " + std::to_string(env.world_size) +
                           " ranks started with the same MASTER_ADDR and MASTER_PORT, and is the port free on rank 0's "
                           "machine?");
  }
}

void Communicator::Impl::connect_group() {
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("diffuse/group", store);
  try {
    if (backend == "nccl") {
#if defined(DIFFUSE_WITH_NCCL)
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = options.timeout;
      group = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, env.rank, env.world_size, nccl);
#else
      throw DistributedError("the NCCL backend needs a CUDA LibTorch with NCCL, and this diffuse was built without "
                             "one (use --dist-backend gloo)");
#endif
    } else {
#if defined(DIFFUSE_WITH_GLOO)
      auto gloo = c10d::ProcessGroupGloo::Options::create(options.timeout);
      const bool loopback = env.master_addr == "localhost" || env.master_addr.rfind("127.", 0) == 0;
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (loopback)
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        gloo->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      gloo->threads = 2;
      group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, env.rank, env.world_size, gloo);
#else
      throw DistributedError("the Gloo backend needs Gloo's headers at build time (Debian: libgloo-dev), and this "
                             "diffuse was built without them");
#endif
    }
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistributedError("rank " + std::to_string(env.rank) + ": connecting the " + backend + " group through " +
                           where + " failed: " + first_line(e.what()));
  }
}

// Who is to blame for a failed collective: waits until the heartbeats single out a rank
// (a peer that just died still looks alive for kHeartbeatSilence).
std::string Communicator::Impl::peer_report() {
  const std::string host = std::string(env.agent_store ? "torchrun's agent" : "rank 0") +
                           ", which hosts the rendezvous store at " + env.master_addr + ":" +
                           std::to_string(env.master_port) + ", stopped answering (it died, froze, or its machine "
                           "is unreachable)";
  const auto deadline = Clock::now() + kHeartbeatSilence + 2 * kHeartbeatPeriod;
  while (true) {
    const auto silent = heartbeat->silent(env.rank);
    if (!silent.empty() && silent.front() == -1) return host;
    if (!silent.empty())
      return (silent.size() == 1 ? "rank " : "ranks ") + rank_list(silent) + " stopped responding (no heartbeat for " +
             std::to_string(kHeartbeatSilence.count()) + " s: died or froze)";
    if (Clock::now() > deadline)
      return "every other rank is alive, so one of them stopped taking part (it failed on its own; see its error)";
    std::this_thread::sleep_for(kHeartbeatPeriod / 5);
  }
}

void Communicator::Impl::fail(const std::string& what, const std::string& cause) {
  throw DistributedError("rank " + std::to_string(env.rank) + ": " + what + " failed: " + peer_report() + " [" +
                         first_line(cause) + "]");
}

void Communicator::Impl::wait(c10d::Work& work, const std::string& what) {
  try {
    work.wait(options.timeout);
  } catch (const std::exception& e) {
    fail(what, e.what());
  }
}

struct Communicator::Pending::State {
  c10::intrusive_ptr<c10d::Work> work;
  torch::Tensor reduced;  // the tensor the backend reduced
  torch::Tensor target;   // the caller's tensor, when `reduced` is a copy on the backend's device
  Communicator::Impl* impl = nullptr;
  std::string what;
  bool done = false;
};

void Communicator::Pending::wait() {
  if (!state_ || state_->done) return;
  state_->done = true;
  state_->impl->wait(*state_->work, state_->what);
  if (state_->target.defined()) state_->target.copy_(state_->reduced);
}

Communicator::Communicator() = default;

Communicator::Communicator(const DistributedEnv& env, torch::Device device, const DistributedOptions& options)
    : env_(env) {
  if (env.world_size <= 1) return;
  impl_ = std::make_unique<Impl>();
  impl_->env = env;
  impl_->options = options;
  const bool nccl = options.backend == DistributedBackend::nccl ||
                    (options.backend == DistributedBackend::automatic && device.is_cuda());
  impl_->backend = nccl ? "nccl" : "gloo";
  if (nccl && !device.is_cuda())
    throw UsageError("--dist-backend nccl runs on CUDA devices, and this run's device is " + device.str());
  impl_->device = nccl ? device : torch::Device(torch::kCPU);
  impl_->connect_store();
  impl_->connect_group();
  impl_->heartbeat = std::make_shared<Heartbeat>(env.world_size);
  {
    std::lock_guard<std::mutex> lock(impl_->heartbeat->mutex);
    impl_->heartbeat->last_round = Clock::now();
    std::fill(impl_->heartbeat->last_change.begin(), impl_->heartbeat->last_change.end(), Clock::now());
  }
  std::thread(Heartbeat::run, impl_->heartbeat, impl_->beat_store, env.rank).detach();
  spdlog::info("rank {} of {} ({}, local rank {}): {} group through {}:{}", env.rank, env.world_size, env.launcher,
               env.local_rank, impl_->backend, env.master_addr, env.master_port);
}

Communicator::~Communicator() {
  if (!impl_) return;
  // The thread holds its own reference to the heartbeat and the store; it ends within a
  // period, unless it is stuck in a request to a frozen store host, where it is left behind.
  std::unique_lock<std::mutex> lock(impl_->heartbeat->mutex);
  impl_->heartbeat->stopping = true;
  impl_->heartbeat->wake.notify_all();
  impl_->heartbeat->wake.wait_for(lock, 4 * kHeartbeatPeriod, [this] { return impl_->heartbeat->finished; });
}

std::string Communicator::backend_name() const { return impl_ ? impl_->backend : "none"; }

Communicator::Pending Communicator::all_reduce_sum_async(torch::Tensor tensor, const std::string& what) {
  Pending pending;
  if (!impl_) return pending;
  auto state = std::make_shared<Pending::State>();
  state->impl = impl_.get();
  state->what = what;
  if (tensor.device() == impl_->device && tensor.is_contiguous()) {
    state->reduced = tensor;
  } else {
    state->reduced = tensor.to(impl_->device).contiguous();
    state->target = tensor;
  }
  std::vector<at::Tensor> tensors{state->reduced};
  try {
    state->work = impl_->group->allreduce(tensors);
  } catch (const std::exception& e) {
    impl_->fail(what, e.what());
  }
  pending.state_ = std::move(state);
  return pending;
}

void Communicator::all_reduce_sum(torch::Tensor& tensor, const std::string& what) {
  all_reduce_sum_async(tensor, what).wait();
}

void Communicator::broadcast_from_root(std::vector<torch::Tensor> tensors, const std::string& what) {
  if (!impl_) return;
  torch::NoGradGuard no_grad;
  std::vector<Pending> pending;
  // One collective per tensor, all in flight at once; the copies go back after each.
  for (auto& tensor : tensors) {
    auto state = std::make_shared<Pending::State>();
    state->impl = impl_.get();
    state->what = what;
    state->reduced = tensor.to(impl_->device).contiguous().clone();
    state->target = tensor;
    std::vector<at::Tensor> one{state->reduced};
    c10d::BroadcastOptions options;
    options.rootRank = 0;
    try {
      state->work = impl_->group->broadcast(one, options);
    } catch (const std::exception& e) {
      impl_->fail(what, e.what());
    }
    Pending p;
    p.state_ = std::move(state);
    pending.push_back(std::move(p));
  }
  for (auto& p : pending) p.wait();
}

torch::Tensor Communicator::all_gather(const torch::Tensor& local, const std::string& what) {
  if (!impl_) return local.clone();
  std::vector<at::Tensor> input{local.to(impl_->device).contiguous()};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < env_.world_size; ++r) output[0].push_back(torch::empty_like(input[0]));
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = impl_->group->allgather(output, input);
  } catch (const std::exception& e) {
    impl_->fail(what, e.what());
  }
  impl_->wait(*work, what);
  return torch::cat(output[0]).to(local.device());
}

void Communicator::barrier(const std::string& what) {
  if (!impl_) return;
  auto token = torch::zeros({1}, torch::TensorOptions(torch::kFloat32).device(impl_->device));
  all_reduce_sum(token, what);
}

void Communicator::root_done_then_others_continue(const std::string& what) {
  if (!impl_) return;
  const std::string key = "diffuse/done/" + std::to_string(impl_->done_count++);
  if (is_root()) {
    impl_->store->set(key, bytes_of("1"));
    return;
  }
  auto& beat = *impl_->heartbeat;
  {
    std::lock_guard<std::mutex> lock(beat.mutex);
    beat.watched = key;
    beat.watched_seen = false;
  }
  while (true) {
    {
      std::unique_lock<std::mutex> lock(beat.mutex);
      if (beat.wake.wait_for(lock, kHeartbeatPeriod, [&] { return beat.watched_seen; })) return;
    }
    const auto silent = beat.silent(rank());
    if (!silent.empty() && (silent.front() <= 0))
      throw DistributedError("rank " + std::to_string(rank()) + ": waiting for rank 0 to finish " + what +
                             " failed: " + impl_->peer_report());
  }
}

void Communicator::require_same(const std::string& what, const std::string& text) {
  if (!impl_) return;
  const std::string prefix = "diffuse/same/" + what + "/";
  std::vector<std::string> prints(static_cast<size_t>(world_size()));
  try {
    impl_->store->set(prefix + std::to_string(rank()), bytes_of(fingerprint(text)));
    for (int r = 0; r < world_size(); ++r) {
      const auto value = impl_->store->get(prefix + std::to_string(r));
      prints[static_cast<size_t>(r)] = std::string(value.begin(), value.end());
    }
  } catch (const std::exception& e) {
    impl_->fail("comparing the " + what + " of the ranks", e.what());
  }
  std::vector<int> differ;
  for (int r = 1; r < world_size(); ++r)
    if (prints[static_cast<size_t>(r)] != prints[0]) differ.push_back(r);
  if (!differ.empty())
    throw ConfigError("the " + what + " of rank" + (differ.size() > 1 ? "s " : " ") + rank_list(differ) +
                      " differs from rank 0's (fingerprint " + prints[static_cast<size_t>(differ[0])] + " vs " + prints[0] +
                      "): every rank must be given the same config file, --set overrides and data");
}

}  // namespace diffuse
