#include "diffuse/core/atomic_file.h"

#include <filesystem>
#include <fstream>

#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"

namespace diffuse {

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const fs::path tmp = target.string() + ".tmp";
  try {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(tmp.string() + ": cannot open for writing");
    write(out);
    out.flush();
    if (!out) throw Error(tmp.string() + ": write failed (disk full?)");
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp);
    throw Error(path + ": cannot rename temp file into place: " + ec.message());
  }
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, [&](std::ostream& out) { out << text; });
}

}  // namespace diffuse
