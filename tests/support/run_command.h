#pragma once
// Runs a program (usually the built `diffuse` binary) and captures what it printed and its
// exit code, for the CLI tests.
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

}  // namespace diffuse::test
