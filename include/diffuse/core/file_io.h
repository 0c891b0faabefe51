#pragma once
// Reading a whole file into memory, with errors that name the file (writing: atomic_file.h).
#include <string>

namespace diffuse {

// The bytes of `path`. Throws DataError "PATH: cannot open for reading" or "PATH: read
// failed"; with `what` ("the metrics file") the messages name it: "PATH: cannot open the
// metrics file for reading", "PATH: reading the metrics file failed".
std::string read_file_bytes(const std::string& path, const std::string& what = "");

}  // namespace diffuse
