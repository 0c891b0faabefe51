// diffuse config --reference: the reference of every config and restore-task key, from the
// option schemas; --update README.md rewrites the README's generated block in place.
#include <spdlog/spdlog.h>

#include <iostream>

#include "args.h"
#include "diffuse/config/config_reference.h"
#include "diffuse/core/atomic_file.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/core/file_io.h"

namespace diffuse::cli {

int run_config(const std::vector<std::string>& argv) {
  Args args("config",
            "Print the reference of every experiment-config and restore-task key (default, valid\n"
            "values, meaning) as Markdown, generated from the option schemas the parser uses.",
            {
                {"--reference", "", "print the reference (the only mode)"},
                {"--update", "FILE",
                 "rewrite the generated block of FILE (README.md) instead of printing"},
            });
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  if (!args.has("--reference")) throw UsageError("config: expected --reference");
  if (!args.has("--update")) {
    std::cout << config_reference_markdown();
    return 0;
  }
  const std::string path = args.get("--update");
  write_text_file_atomic(path, with_config_reference(read_file_bytes(path), path));
  spdlog::info("updated the config reference in {}", path);
  return 0;
}

}  // namespace diffuse::cli
