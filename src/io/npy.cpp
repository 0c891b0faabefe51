#include "diffuse/io/npy.h"

#include <filesystem>
#include <fstream>
#include <regex>
#include <vector>

#include "diffuse/core/error.h"
#include "diffuse/core/shape_text.h"

namespace diffuse {
namespace {

torch::ScalarType npy_dtype(const std::string& descr, const std::string& path) {
  static const std::pair<const char*, torch::ScalarType> kTypes[] = {
      {"<f8", torch::kFloat64}, {"<f4", torch::kFloat32}, {"<f2", torch::kFloat16}, {"<i8", torch::kInt64},
      {"<i4", torch::kInt32},   {"<i2", torch::kInt16},   {"|i1", torch::kInt8},    {"|u1", torch::kUInt8},
      {"|b1", torch::kBool},
  };
  for (const auto& [name, type] : kTypes)
    if (descr == name) return type;
  throw DataError(path + ": .npy dtype '" + descr + "' is not supported (little-endian float64/32/16, int64/32/16/8, "
                  "uint8 or bool; convert with a.astype('<f4'))");
}

}  // namespace

torch::Tensor read_npy(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::is_regular_file(path)) throw DataError(path + ": .npy file not found");
  const uint64_t file_bytes = fs::file_size(path);
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  if (!in || std::string(magic, 6) != "\x93NUMPY")
    throw DataError(path + ": not a .npy file (no \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  if (major < 1 || major > 3) throw DataError(path + ": .npy format version " + std::to_string(major) + " is not supported");
  unsigned char length_bytes[4] = {};
  in.read(reinterpret_cast<char*>(length_bytes), major == 1 ? 2 : 4);
  const uint64_t header_bytes = major == 1 ? (length_bytes[0] | length_bytes[1] << 8)
                                           : (length_bytes[0] | length_bytes[1] << 8 | length_bytes[2] << 16 |
                                              static_cast<uint64_t>(length_bytes[3]) << 24);
  const uint64_t data_start = 8 + (major == 1 ? 2 : 4) + header_bytes;
  if (!in || data_start > file_bytes) throw DataError(path + ": truncated .npy header");
  std::string header(header_bytes, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_bytes));
  std::smatch descr, order, shape;
  if (!std::regex_search(header, descr, std::regex("'descr'\\s*:\\s*'([^']*)'")) ||
      !std::regex_search(header, order, std::regex("'fortran_order'\\s*:\\s*(True|False)")) ||
      !std::regex_search(header, shape, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)")))
    throw DataError(path + ": .npy header is not {'descr', 'fortran_order', 'shape'}: " + header);
  if (order[1] == "True")
    throw DataError(path + ": .npy array is in Fortran order; save it with np.ascontiguousarray(a)");
  const torch::ScalarType type = npy_dtype(descr[1], path);
  std::vector<int64_t> sizes;
  const std::string dims = shape[1];
  const std::regex number("\\d+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), number), end; it != end; ++it)
    sizes.push_back(std::stoll(it->str()));
  auto tensor = torch::empty(sizes, torch::TensorOptions().dtype(type));
  const uint64_t bytes = static_cast<uint64_t>(tensor.numel()) * tensor.element_size();
  if (data_start + bytes != file_bytes)
    throw DataError(path + ": .npy shape " + shape_text(tensor.sizes()) + " of " + descr[1].str() + " needs " +
                    std::to_string(bytes) + " data bytes, the file holds " + std::to_string(file_bytes - data_start));
  in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(bytes));
  if (!in) throw DataError(path + ": read failed");
  return tensor;
}

}  // namespace diffuse
