#pragma once
// Exception types. Every failure the user can cause is one of these, with a message that
// names the file, key or flag, what was expected and what was found. The CLI turns them
// into one `error: ...` line and exit code 1 (UsageError: usage text and exit code 2).
#include <stdexcept>
#include <string>

namespace diffuse {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A config file or --set override that does not fit the schema.
struct ConfigError : Error {
  using Error::Error;
};

// A dataset, image or tensor file that is missing, corrupt or does not fit the config.
struct DataError : Error {
  using Error::Error;
};

// A checkpoint that is truncated, foreign, or does not fit the model it is loaded into.
struct CheckpointError : Error {
  using Error::Error;
};

// A bad command line: unknown subcommand or flag, missing flag value.
struct UsageError : Error {
  using Error::Error;
};

}  // namespace diffuse
