#pragma once
// Runs a program (usually the built `diffuse` binary) and captures what it printed and its
// exit code, for the CLI tests.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace diffuse::test {

struct CommandResult {
  int exit_code = -1;  // the process's exit status; 128 + N when killed by signal N
  std::string out;     // stdout
  std::string err;     // stderr
};

// Runs argv[0] (a path) with the arguments argv[1..], the current environment plus `env`.
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& env = {});

// The `diffuse` executable: $DIFFUSE_BIN (set by ctest), else build/bin/diffuse under the
// source dir. Throws when it does not exist.
std::string diffuse_binary();

// run_command({diffuse_binary(), args...}).
CommandResult run_diffuse(const std::vector<std::string>& args,
                          const std::vector<std::pair<std::string, std::string>>& env = {});

// The same command run by cli::run_command_line in a forked copy of this process, without
// exec: no program start-up, so a table of quick refusals costs milliseconds a row instead
// of LibTorch's start-up each. Only for tests whose process has not run parallel LibTorch
// work itself (GNU OpenMP's thread pool does not survive fork). The exit code, stdout and
// stderr are those the binary would give.
CommandResult run_diffuse_forked(const std::vector<std::string>& args);

// A child process left running, for tests that signal it while it works (e.g. SIGINT to a
// training run after its first checkpoint). The destructor kills and reaps a child that is
// still running, so a failing test leaves nothing behind.
class BackgroundCommand {
 public:
  explicit BackgroundCommand(const std::vector<std::string>& argv,
                             const std::vector<std::pair<std::string, std::string>>& env = {});
  ~BackgroundCommand();
  BackgroundCommand(const BackgroundCommand&) = delete;
  BackgroundCommand& operator=(const BackgroundCommand&) = delete;

  // Polls `ready` until it holds (true), the child exits or `limit_s` passes (false). The
  // limit only keeps a broken test from hanging; it is not a timing assertion.
  bool wait_until(const std::function<bool()>& ready, double limit_s = 300.0);
  bool running();
  void send_signal(int signal_number);
  // Waits for the child to exit; its exit code (128 + N when killed by signal N) and output.
  CommandResult wait();

 private:
  struct Capture;
  std::unique_ptr<Capture> capture_;
  int pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

// BackgroundCommand({diffuse_binary(), args...}).
std::unique_ptr<BackgroundCommand> start_diffuse(
    const std::vector<std::string>& args,
    const std::vector<std::pair<std::string, std::string>>& env = {});

}  // namespace diffuse::test
