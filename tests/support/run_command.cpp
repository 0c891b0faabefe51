#include "support/run_command.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "support/test_paths.h"

extern char** environ;

namespace diffuse::test {

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::pair<std::string, std::string>>& env) {
  if (argv.empty()) throw std::invalid_argument("run_command: empty argv");
  TempDir capture;
  const std::string out_path = capture.file("stdout"), err_path = capture.file("stderr");

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
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error("waitpid failed for " + argv[0]);
  }
  CommandResult result;
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) result.exit_code = 128 + WTERMSIG(status);
  result.out = read_all(out_path);
  result.err = read_all(err_path);
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

CommandResult run_diffuse(const std::vector<std::string>& args,
                          const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<std::string> argv{diffuse_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, env);
}

}  // namespace diffuse::test
