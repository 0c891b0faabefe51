#include "distributed_launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "diffuse/core/error.h"

namespace diffuse::cli {
namespace {

using Clock = std::chrono::steady_clock;

int64_t timeout_seconds(const Args& args) { return args.get_int("--dist-timeout", 300, 1, 86400); }

// The worker's command line: argv without --nproc N, and with --threads sharing this
// machine's CPUs among the workers when neither --threads nor OMP_NUM_THREADS says otherwise.
std::vector<std::string> worker_argv(const std::string& command, const std::vector<std::string>& argv, int nproc) {
  std::vector<std::string> out{"diffuse", command};
  bool threads = std::getenv("OMP_NUM_THREADS") != nullptr;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--nproc") {
      ++i;
      continue;
    }
    if (argv[i].rfind("--nproc=", 0) == 0) continue;
    threads = threads || argv[i] == "--threads" || argv[i].rfind("--threads=", 0) == 0;
    out.push_back(argv[i]);
  }
  if (!threads) {
    const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    out.insert(out.end(), {"--threads", std::to_string(std::max(1, cpus / nproc))});
  }
  return out;
}

struct Worker {
  pid_t pid = -1;
  bool running = false;
  int exit_code = 0;
};

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

void signal_running(std::vector<Worker>& workers, int signal_number) {
  for (auto& w : workers)
    if (w.running) ::kill(w.pid, signal_number);
}

pid_t start_worker(const std::vector<std::string>& argv, int rank, int nproc, int port, const sigset_t& mask) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::setenv("RANK", std::to_string(rank).c_str(), 1);
  ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
  ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
  ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  ::sigprocmask(SIG_SETMASK, &mask, nullptr);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv("/proc/self/exe", args.data());
  std::perror("diffuse --nproc: exec /proc/self/exe");
  ::_exit(127);
}

// Waits for the workers, forwarding SIGINT/SIGTERM. Once one has failed, the others get
// `grace` to notice and stop on their own (their collectives time out), then SIGTERM, then
// SIGKILL.
int supervise(std::vector<Worker>& workers, std::chrono::seconds grace) {
  sigset_t watched;
  sigemptyset(&watched);
  sigaddset(&watched, SIGINT);
  sigaddset(&watched, SIGTERM);
  sigaddset(&watched, SIGCHLD);
  int first_failure = 0;
  Clock::time_point failed_at;
  int escalation = 0;  // 0 none, 1 SIGTERM sent, 2 SIGKILL sent
  auto running = [&] { return std::any_of(workers.begin(), workers.end(), [](const Worker& w) { return w.running; }); };
  while (running()) {
    const timespec tick{0, 200'000'000};
    siginfo_t info;
    const int caught = ::sigtimedwait(&watched, &info, &tick);
    if (caught == SIGINT || caught == SIGTERM) signal_running(workers, caught);
    int status = 0;
    pid_t pid = 0;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      for (size_t r = 0; r < workers.size(); ++r) {
        if (workers[r].pid != pid) continue;
        workers[r].running = false;
        workers[r].exit_code = exit_code_of(status);
        if (workers[r].exit_code != 0) {
          spdlog::warn("--nproc: rank {} exited with code {}", r, workers[r].exit_code);
          if (first_failure == 0) {
            first_failure = workers[r].exit_code;
            failed_at = Clock::now();
          }
        }
      }
    }
    if (first_failure != 0 && running()) {
      const auto since = Clock::now() - failed_at;
      if (escalation == 0 && since > grace) {
        spdlog::warn("--nproc: the other ranks did not stop {} s after the first failure; sending SIGTERM", grace.count());
        signal_running(workers, SIGTERM);
        escalation = 1;
      } else if (escalation == 1 && since > grace + std::chrono::seconds(10)) {
        signal_running(workers, SIGKILL);
        escalation = 2;
      }
    }
  }
  return first_failure;
}

}  // namespace

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("--nproc: cannot open a socket to find a free port for MASTER_PORT");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0;
  ::close(fd);
  if (!ok) throw Error("--nproc: no free port on 127.0.0.1 for MASTER_PORT (set MASTER_PORT yourself)");
  return ntohs(addr.sin_port);
}

std::vector<FlagSpec> with_distributed_flags(std::vector<FlagSpec> flags) {
  flags.insert(flags.end(), {
      {"--nproc", "N", "run as N data-parallel processes on this machine, 1-1024 (torchrun and srun need no flag)"},
      {"--dist-backend", "B", "auto (NCCL on CUDA, Gloo on CPU), gloo or nccl (default auto)"},
      {"--dist-timeout", "S", "seconds a rank waits for the others before failing, 1-86400 (default 300)"},
  });
  return flags;
}

std::optional<int> launch_local_workers_if_asked(const Args& args, const std::string& command,
                                                 const std::vector<std::string>& argv) {
  if (!args.has("--nproc")) return std::nullopt;
  const int nproc = static_cast<int>(args.get_int("--nproc", 1, 1, 1024));
  const DistributedEnv env = distributed_env_from_environment();
  if (env.world_size > 1)
    throw UsageError("--nproc: this process is already rank " + std::to_string(env.rank) + " of " +
                     std::to_string(env.world_size) + " (started by " + env.launcher + "); drop --nproc");
  int port = 0;
  if (const char* set = std::getenv("MASTER_PORT")) {
    port = std::atoi(set);
    if (port < 1 || port > 65535) throw UsageError(std::string("MASTER_PORT=") + set + ": expected a port in [1, 65535]");
  } else {
    port = free_local_port();
  }
  const auto child_argv = worker_argv(command, argv, nproc);
  // The signals reach this process through sigtimedwait; the workers get the old mask back.
  sigset_t watched, previous;
  sigemptyset(&watched);
  sigaddset(&watched, SIGINT);
  sigaddset(&watched, SIGTERM);
  sigaddset(&watched, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &watched, &previous);
  spdlog::info("--nproc: starting {} ranks of '{}' (MASTER_ADDR 127.0.0.1, MASTER_PORT {})", nproc, command, port);
  std::vector<Worker> workers(static_cast<size_t>(nproc));
  for (int r = 0; r < nproc; ++r) {
    workers[static_cast<size_t>(r)].pid = start_worker(child_argv, r, nproc, port, previous);
    workers[static_cast<size_t>(r)].running = workers[static_cast<size_t>(r)].pid > 0;
  }
  const int code = supervise(workers, std::chrono::seconds(timeout_seconds(args) + 30));
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
  return code;
}

std::unique_ptr<Communicator> join_ranks(const Args& args, torch::Device device) {
  const DistributedEnv env = distributed_env_from_environment();
  DistributedOptions options;
  options.backend = parse_distributed_backend(args.get("--dist-backend", "auto"), "--dist-backend");
  options.timeout = std::chrono::seconds(timeout_seconds(args));
  if (env.world_size <= 1) return std::make_unique<Communicator>();
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] [rank " + std::to_string(env.rank) + "] %v");
  if (env.rank > 0 && !args.has("--log-level")) spdlog::set_level(spdlog::level::warn);
  return std::make_unique<Communicator>(env, rank_device(device, env), options);
}

}  // namespace diffuse::cli
