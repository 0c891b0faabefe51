#pragma once
// safetensors files (the format of Hugging Face's `safetensors` package): an 8-byte
// little-endian header length N, N bytes of JSON mapping each tensor name to
// {dtype, shape, data_offsets: [begin, end)} plus an optional "__metadata__" map of strings,
// then the tensors' raw little-endian bytes, offsets counted from the end of the header.
// Reading validates every offset and size against the file: truncation, overlaps, holes,
// sizes that disagree with dtype × shape and unknown dtypes are DataErrors naming the file
// and the tensor.
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace diffuse {

struct SafetensorsContents {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // in file order (by offset)
  std::map<std::string, std::string> metadata;

  // The tensor called `name`, or an undefined tensor.
  torch::Tensor find(const std::string& name) const;
  // The tensors by name.
  std::map<std::string, torch::Tensor> tensor_map() const;
};

// Reads every tensor onto the CPU. Dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
SafetensorsContents read_safetensors(const std::string& path);

// Writes `tensors` (any device, made contiguous on the CPU) and `metadata` atomically; names
// must be unique and non-empty, and "__metadata__" is reserved. Returns the data bytes written
// (the tensors, without the header).
uint64_t write_safetensors(const std::string& path, const SafetensorsContents& contents);

// True where the file is a safetensors file: its name ends in .safetensors.
bool is_safetensors_path(const std::string& path);

}  // namespace diffuse
