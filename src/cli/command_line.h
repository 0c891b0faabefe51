#pragma once
#include <string>
#include <vector>

namespace diffuse::cli {

// Runs the subcommand named by args[0] with the flags after it (argv without the program
// name); returns the exit code: 0 success, 1 an error (one "error: " line on stderr), 2 a
// usage error (with the --help hint).
int run_command_line(const std::vector<std::string>& args);

}  // namespace diffuse::cli
