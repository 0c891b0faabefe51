#include "support/run_command.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

#include <iostream>

#include "command_line.h"
#include "support/test_paths.h"

extern char** environ;

namespace diffuse::test {

namespace {

// Starts argv with stdin from /dev/null and stdout/stderr into the given files.
pid_t spawn(const std::vector<std::string>& argv,
            const std::vector<std::pair<std::string, std::string>>& env, const std::string& out_path,
            const std::string& err_path) {
  if (argv.empty()) throw std::invalid_argument("run_command: empty argv");
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    bool replaced = false;
    for (const auto& [key, value] : env)
      if (entry.rfind(key + "=", 0) == 0) replaced = true;
    if (!replaced) env_strings.push_back(entry);
  }
  for (const auto& [key, value] : env) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp, args;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, argv[0].c_str(), &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0)
    throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(spawned));
  return pid;
}

int wait_for(pid_t pid, const std::string& what) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid failed for " + what);
  }
  return status;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& env) {
  TempDir capture;
  const std::string out_path = capture.file("stdout"), err_path = capture.file("stderr");
  const pid_t pid = spawn(argv, env, out_path, err_path);
  const int status = wait_for(pid, argv[0]);
  CommandResult result;
  result.exit_code = exit_code_of(status);
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

CommandResult run_diffuse_forked(const std::vector<std::string>& args) {
  TempDir capture;
  const std::string out_path = capture.file("stdout"), err_path = capture.file("stderr");
  // Nothing buffered may be written twice, by the parent and by the child.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    const auto redirect = [](const std::string& path, int fd, int flags) {
      const int opened = ::open(path.c_str(), flags, 0644);
      if (opened < 0 || ::dup2(opened, fd) < 0) ::_exit(126);
      ::close(opened);
    };
    redirect("/dev/null", STDIN_FILENO, O_RDONLY);
    redirect(out_path, STDOUT_FILENO, O_WRONLY | O_CREAT | O_TRUNC);
    redirect(err_path, STDERR_FILENO, O_WRONLY | O_CREAT | O_TRUNC);
    int code = 125;  // an exception that escaped the command line's own handlers
    try {
      code = cli::run_command_line(args);
    } catch (...) {
    }
    std::cout.flush();
    std::cerr.flush();
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    ::_exit(code);  // no atexit handlers or destructors of the test process
  }
  const int status = wait_for(pid, "forked diffuse");
  CommandResult result;
  result.exit_code = exit_code_of(status);
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

struct BackgroundCommand::Capture {
  TempDir dir;
  std::string name;
};

BackgroundCommand::BackgroundCommand(const std::vector<std::string>& argv,
                                     const std::vector<std::pair<std::string, std::string>>& env)
    : capture_(std::make_unique<Capture>()) {
  capture_->name = argv.empty() ? "" : argv[0];
  pid_ = spawn(argv, env, capture_->dir.file("stdout"), capture_->dir.file("stderr"));
}

BackgroundCommand::~BackgroundCommand() {
  if (reaped_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

bool BackgroundCommand::running() {
  if (reaped_) return false;
  const pid_t done = waitpid(pid_, &status_, WNOHANG);
  if (done == pid_) reaped_ = true;
  return !reaped_;
}

bool BackgroundCommand::wait_until(const std::function<bool()>& ready, double limit_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ready()) return true;
    if (!running()) return ready();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void BackgroundCommand::send_signal(int signal_number) {
  if (!running()) throw std::runtime_error(capture_->name + " exited before it could be signalled");
  if (::kill(pid_, signal_number) != 0)
    throw std::runtime_error("kill failed for " + capture_->name + ": " + std::strerror(errno));
}

CommandResult BackgroundCommand::wait() {
  if (!reaped_) {
    status_ = wait_for(pid_, capture_->name);
    reaped_ = true;
  }
  CommandResult result;
  result.exit_code = exit_code_of(status_);
  result.out = read_file(capture_->dir.file("stdout"));
  result.err = read_file(capture_->dir.file("stderr"));
  return result;
}

std::string diffuse_binary() {
  std::filesystem::path path;
  if (const char* env = std::getenv("DIFFUSE_BIN")) path = env;
  else path = source_dir() / "build" / "bin" / "diffuse";
  if (!std::filesystem::exists(path))
    throw std::runtime_error("diffuse binary not found at " + path.string() +
                             " (set DIFFUSE_BIN or build the diffuse_cli target)");
  return path.string();
}

std::unique_ptr<BackgroundCommand> start_diffuse(
    const std::vector<std::string>& args, const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<std::string> argv{diffuse_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return std::make_unique<BackgroundCommand>(argv, env);
}

CommandResult run_diffuse(const std::vector<std::string>& args,
                          const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<std::string> argv{diffuse_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, env);
}


}  // namespace diffuse::test
