#include "diffuse/core/file_io.h"

#include <fstream>
#include <sstream>

#include "diffuse/core/error.h"

namespace diffuse {

std::string read_file_bytes(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw DataError(path + ": cannot open " + (what.empty() ? "" : what + " ") + "for reading");
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad())
    throw DataError(path + (what.empty() ? ": read failed" : ": reading " + what + " failed"));
  return content.str();
}

}  // namespace diffuse
