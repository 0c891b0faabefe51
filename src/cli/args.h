#pragma once
// A small strict command-line parser for the subcommands: every flag is declared up front,
// an unknown flag or a missing value is a UsageError (exit code 2 with usage on stderr).
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "diffuse/sampling/sampler.h"

namespace diffuse::cli {

struct FlagSpec {
  std::string name;        // "--checkpoint"
  std::string value_name;  // "PATH"; empty for a switch
  std::string help;
  bool repeatable = false;
};

class Args {
 public:
  Args(std::string command, std::string summary, std::vector<FlagSpec> flags);

  // Parses argv after the subcommand name. Returns false when --help was asked for (the
  // usage has been printed to stdout).
  bool parse(const std::vector<std::string>& argv);

  bool has(const std::string& flag) const;
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  std::string require(const std::string& flag) const;  // UsageError if missing
  std::vector<std::string> all(const std::string& flag) const;
  // An integer in [lo, hi] (the fallback when the flag is absent); anything else, overflow
  // included, is a UsageError naming the flag, the range and the value found.
  int64_t get_int(const std::string& flag, int64_t fallback, int64_t lo, int64_t hi) const;
  // A finite number in [lo, hi]; NaN and infinities are refused like any value out of range.
  double get_double(const std::string& flag, double fallback, double lo, double hi) const;

  std::string usage() const;

 private:
  const FlagSpec* find(const std::string& name) const;
  std::string command_, summary_;
  std::vector<FlagSpec> flags_;
  std::map<std::string, std::vector<std::string>> values_;
};

// Flags every subcommand shares.
std::vector<FlagSpec> common_flags();
// Applies --log-level (UsageError on an unknown level).
void apply_common_flags(const Args& args);
// --threads for the commands that run networks (declared by each, as train's default comes
// from its config): sets LibTorch's CPU thread count, 0 = every logical CPU.
FlagSpec thread_flag();
void apply_thread_flag(const Args& args, int fallback = 0);

// A progress callback (done, total) that logs "WHAT: done/total UNIT (P%)" at most every
// tenth of the way.
std::function<void(int64_t done, int64_t total)> decile_progress(std::string what, std::string unit);
// The same over a sampler's steps (their network evaluations).
SamplerCallback decile_sampler_progress(std::string what);

// Installs SIGINT/SIGTERM handlers that set the returned flag (a long run then finishes its
// step, checkpoints and returns; a second signal ends the process).
const std::atomic<bool>& stop_on_signals();

// The value of `flag` (required), a file name ending in .safetensors (UsageError otherwise).
std::string require_safetensors_path(const Args& args, const std::string& flag);

int run_train(const std::vector<std::string>& argv);
int run_reflow(const std::vector<std::string>& argv);
int run_sample(const std::vector<std::string>& argv);
int run_restore(const std::vector<std::string>& argv);
int run_invert(const std::vector<std::string>& argv);
int run_distill(const std::vector<std::string>& argv);
int run_export(const std::vector<std::string>& argv);
int run_import(const std::vector<std::string>& argv);
int run_encode(const std::vector<std::string>& argv);
int run_info(const std::vector<std::string>& argv);
int run_eval(const std::vector<std::string>& argv);
int run_plot(const std::vector<std::string>& argv);
int run_config(const std::vector<std::string>& argv);

}  // namespace diffuse::cli
