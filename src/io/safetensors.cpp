#include "diffuse/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "diffuse/core/atomic_file.h"
#include "diffuse/core/error.h"
#include "diffuse/core/text.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.cpp copies tensor bytes as they are: it needs a little-endian host"
#endif

namespace diffuse {
namespace {

// The format's own limit on the header (the reference implementation refuses larger ones).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct DtypeEntry {
  const char* name;
  torch::ScalarType type;
};

constexpr DtypeEntry kDtypes[] = {
    {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
    {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool},
};

std::string dtype_list() { return join(names_of(kDtypes)); }

const char* dtype_name(torch::ScalarType type, const std::string& path, const std::string& tensor) {
  for (const auto& entry : kDtypes)
    if (entry.type == type) return entry.name;
  throw DataError(path + ": tensor '" + tensor + "' has dtype " + c10::toString(type) +
                  ", which safetensors files of diffuse do not hold (" + dtype_list() + ")");
}

// One tensor's header entry, checked against the byte buffer of `buffer_bytes`.
struct HeaderEntry {
  std::string name;
  torch::ScalarType type;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

HeaderEntry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& value,
                        uint64_t buffer_bytes) {
  const std::string where = path + ": tensor '" + name + "'";
  if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") || !value.contains("data_offsets"))
    throw DataError(where + ": expected {dtype, shape, data_offsets} in the header, found " + value.dump());
  HeaderEntry entry;
  entry.name = name;
  const auto& dtype = value["dtype"];
  const DtypeEntry* found = dtype.is_string() ? find_by_name(kDtypes, dtype.get<std::string>()) : nullptr;
  if (!found)
    throw DataError(where + ": dtype " + dtype.dump() + " is not supported (supported: " + dtype_list() + ")");
  entry.type = found->type;
  uint64_t numel = 1;
  if (!value["shape"].is_array()) throw DataError(where + ": shape must be a list of sizes, found " + value["shape"].dump());
  for (const auto& size : value["shape"]) {
    if (!size.is_number_unsigned() || size.get<uint64_t>() > (uint64_t{1} << 48))
      throw DataError(where + ": shape must be a list of sizes >= 0, found " + value["shape"].dump());
    entry.shape.push_back(size.get<int64_t>());
    numel = entry.shape.back() == 0 || numel <= std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(entry.shape.back())
                ? numel * static_cast<uint64_t>(entry.shape.back())
                : std::numeric_limits<uint64_t>::max();
  }
  const auto& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned() ||
      offsets[0].get<uint64_t>() > offsets[1].get<uint64_t>())
    throw DataError(where + ": data_offsets must be [begin, end] with 0 <= begin <= end, found " + offsets.dump());
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  const uint64_t element = c10::elementSize(entry.type);
  if (numel > std::numeric_limits<uint64_t>::max() / element || entry.end - entry.begin != numel * element)
    throw DataError(where + ": " + found->name + " " + value["shape"].dump() + " needs " +
                    (numel > std::numeric_limits<uint64_t>::max() / element ? std::string("more than 2^64")
                                                                            : std::to_string(numel * element)) +
                    " bytes, but its data_offsets span " + std::to_string(entry.end - entry.begin));
  if (entry.end > buffer_bytes)
    throw DataError(path + ": truncated safetensors file: tensor '" + name + "' ends at data byte " +
                    std::to_string(entry.end) + ", but the file holds " + std::to_string(buffer_bytes) + " data bytes");
  return entry;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const nlohmann::json& value) {
  std::map<std::string, std::string> metadata;
  if (!value.is_object()) throw DataError(path + ": __metadata__ must map names to strings, found " + value.dump());
  for (const auto& [key, text] : value.items()) {
    if (!text.is_string())
      throw DataError(path + ": __metadata__ '" + key + "' must be a string, found " + text.dump());
    metadata[key] = text.get<std::string>();
  }
  return metadata;
}

// The entries sorted by offset must tile the buffer: no overlap, no unused bytes.
void check_tiling(const std::string& path, std::vector<HeaderEntry>& entries, uint64_t buffer_bytes) {
  std::sort(entries.begin(), entries.end(),
            [](const HeaderEntry& a, const HeaderEntry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t position = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    if (e.begin < position)
      throw DataError(path + ": tensors '" + entries[i - 1].name + "' and '" + e.name + "' overlap (data bytes " +
                      std::to_string(e.begin) + "-" + std::to_string(position) + ")");
    if (e.begin > position)
      throw DataError(path + ": data bytes " + std::to_string(position) + "-" + std::to_string(e.begin) +
                      " belong to no tensor (before '" + e.name + "')");
    position = e.end;
  }
  if (position != buffer_bytes)
    throw DataError(path + ": " + std::to_string(buffer_bytes - position) + " data bytes after the last tensor belong to "
                    "no tensor (appended or damaged file)");
}

}  // namespace

torch::Tensor SafetensorsContents::find(const std::string& name) const {
  for (const auto& [key, tensor] : tensors)
    if (key == name) return tensor;
  return {};
}

std::map<std::string, torch::Tensor> SafetensorsContents::tensor_map() const {
  return {tensors.begin(), tensors.end()};
}

bool is_safetensors_path(const std::string& path) {
  return std::filesystem::path(path).extension() == ".safetensors";
}

SafetensorsContents read_safetensors(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw DataError(path + ": safetensors file not found");
  if (!fs::is_regular_file(path)) throw DataError(path + ": is not a regular file");
  const uint64_t file_bytes = fs::file_size(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open for reading");
  if (file_bytes < 8) throw DataError(path + ": not a safetensors file: " + std::to_string(file_bytes) + " bytes, "
                                      "shorter than the 8-byte header length");
  unsigned char length_bytes[8];
  in.read(reinterpret_cast<char*>(length_bytes), 8);
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = header_bytes << 8 | length_bytes[i];
  if (header_bytes > kMaxHeaderBytes || header_bytes > file_bytes - 8)
    throw DataError(path + ": not a safetensors file: its header length " + std::to_string(header_bytes) +
                    " exceeds the " + std::to_string(file_bytes - 8) + " bytes after it" +
                    (header_bytes > kMaxHeaderBytes ? " (or the format's 100 MB limit)" : ""));
  std::string header(header_bytes, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_bytes));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(header);
  } catch (const nlohmann::json::parse_error& e) {
    throw DataError(path + ": not a safetensors file: its header is not JSON (" + e.what() + ")");
  }
  if (!json.is_object()) throw DataError(path + ": not a safetensors file: its header is not a JSON object");
  const uint64_t buffer_bytes = file_bytes - 8 - header_bytes;
  SafetensorsContents contents;
  std::vector<HeaderEntry> entries;
  for (const auto& [name, value] : json.items()) {
    if (name == "__metadata__") contents.metadata = parse_metadata(path, value);
    else entries.push_back(parse_entry(path, name, value, buffer_bytes));
  }
  check_tiling(path, entries, buffer_bytes);
  for (const auto& e : entries) {
    auto tensor = torch::empty(e.shape, torch::TensorOptions().dtype(e.type));
    in.seekg(static_cast<std::streamoff>(8 + header_bytes + e.begin));
    in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(e.end - e.begin));
    if (!in) throw DataError(path + ": read failed in tensor '" + e.name + "'");
    contents.tensors.emplace_back(e.name, tensor);
  }
  return contents;
}

uint64_t write_safetensors(const std::string& path, const SafetensorsContents& contents) {
  nlohmann::json header = nlohmann::json::object();
  std::vector<torch::Tensor> host;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : contents.tensors) {
    if (name.empty() || name == "__metadata__" || header.contains(name))
      throw DataError(path + ": tensor name '" + name + "' is empty, reserved or given twice");
    if (!tensor.defined()) throw DataError(path + ": tensor '" + name + "' is undefined");
    const char* dtype = dtype_name(tensor.scalar_type(), path, name);
    host.push_back(tensor.detach().to(torch::kCPU).contiguous());
    const uint64_t bytes = host.back().numel() * host.back().element_size();
    header[name] = {{"dtype", dtype}, {"shape", tensor.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!contents.metadata.empty()) header["__metadata__"] = contents.metadata;
  std::string text = header.dump();
  // Pad with spaces so that the data starts 8-byte aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  write_file_atomic(path, [&](std::ostream& out) {
    const uint64_t length = text.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(length >> (8 * i) & 0xFF));
    out << text;
    for (const auto& tensor : host)
      out.write(static_cast<const char*>(tensor.data_ptr()), static_cast<std::streamsize>(tensor.numel() * tensor.element_size()));
  });
  return offset;
}

}  // namespace diffuse
