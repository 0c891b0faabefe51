#include "diffuse/io/tensor_file.h"

#include <filesystem>

#include "diffuse/core/error.h"

namespace diffuse {

void write_tensor_file(const std::string& path, const torch::Tensor& tensor) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const std::string tmp = path + ".tmp";
  try {
    torch::save(tensor.detach().cpu(), tmp);
  } catch (const c10::Error& e) {
    fs::remove(tmp);
    throw DataError(path + ": cannot write the tensor file: " + e.what_without_backtrace());
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp);
    throw DataError(path + ": cannot rename the temp file into place: " + ec.message());
  }
}

}  // namespace diffuse
