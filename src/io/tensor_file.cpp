#include "diffuse/io/tensor_file.h"

#include <sstream>

#include "diffuse/core/atomic_file.h"
#include "diffuse/core/error.h"

namespace diffuse {

void write_tensor_file(const std::string& path, const torch::Tensor& tensor) {
  std::ostringstream bytes;
  try {
    torch::save(tensor.detach().cpu(), bytes);
  } catch (const c10::Error& e) {
    throw DataError(path + ": cannot serialise the tensor: " + e.what_without_backtrace());
  }
  write_text_file_atomic(path, bytes.str());
}

void write_tensor_list_file(const std::string& path, const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> host;
  for (const auto& t : tensors) host.push_back(t.detach().cpu());
  std::ostringstream bytes;
  try {
    torch::save(host, bytes);
  } catch (const c10::Error& e) {
    throw DataError(path + ": cannot serialise the tensors: " + e.what_without_backtrace());
  }
  write_text_file_atomic(path, bytes.str());
}

}  // namespace diffuse
