#include "diffuse/core/atomic_file.h"

#include <filesystem>
#include <fstream>

#include "diffuse/core/error.h"

namespace diffuse {
namespace fs = std::filesystem;

void write_file_atomic_at(const std::string& path,
                          const std::function<void(const std::string& temp_path)>& write,
                          const std::string& temp_noun) {
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const fs::path tmp = target.string() + ".tmp";
  try {
    write(tmp.string());
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw Error(path + ": cannot rename " + temp_noun + " into place: " + ec.message());
  }
}

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  write_file_atomic_at(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(tmp + ": cannot open for writing");
    write(out);
    out.flush();
    if (!out) throw Error(tmp + ": write failed (disk full?)");
  });
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, [&](std::ostream& out) { out << text; });
}

void copy_file_atomic(const std::string& from, const std::string& to) {
  write_file_atomic_at(to, [&](const std::string& tmp) {
    fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
  });
}

}  // namespace diffuse
