#pragma once
// Helpers shared by the tests: a fresh temporary folder per test, and paths of the
// project's source tree and of the built `diffuse` binary (from ctest's environment).
#include <filesystem>
#include <string>

namespace diffuse::test {

// A new empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Writes `text` to `path` (creating parent folders).
void write_file(const std::string& path, const std::string& text);
// The bytes of `path` ("" when it cannot be read).
std::string read_file(const std::string& path);

// DIFFUSE_SOURCE_DIR (set by ctest) or the compile-time source dir.
std::filesystem::path source_dir();

}  // namespace diffuse::test
