// safetensors reading and writing (io/safetensors.h): files built byte by byte here, as the
// format specifies them, are read back exactly; what diffuse writes has that layout; and
// every damaged or inconsistent header is refused with a message naming the file and tensor.
#include <gtest/gtest.h>

#include <filesystem>

#include "diffuse/core/error.h"
#include "diffuse/io/safetensors.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

// A file as the format defines it: u64 little-endian header length, the header, the data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>(header.size() >> (8 * i) & 0xFF);
  return bytes + header + data;
}

std::string raw_bytes(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), static_cast<size_t>(c.numel() * c.element_size()));
}

}  // namespace

TEST(Safetensors, ReadsAFileBuiltFromTheSpecification) {
  test::TempDir dir;
  const auto a = torch::tensor({{1.5f, -2.0f, 3.25f}, {0.0f, 7.0f, -0.5f}});
  const auto b = torch::tensor({5, -6}, torch::kInt64);
  const std::string header =
      R"({"b":{"dtype":"I64","shape":[2],"data_offsets":[24,40]},)"
      R"("__metadata__":{"note":"hello"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
  test::write_file(dir.file("x.safetensors"), safetensors_bytes(header, raw_bytes(a) + raw_bytes(b)));
  const auto file = read_safetensors(dir.file("x.safetensors"));
  ASSERT_EQ(file.tensors.size(), 2u);
  // In file order (by offset), whatever the header's key order.
  EXPECT_EQ(file.tensors[0].first, "a");
  EXPECT_EQ(file.tensors[1].first, "b");
  EXPECT_TRUE(torch::equal(file.find("a"), a));
  EXPECT_TRUE(torch::equal(file.find("b"), b));
  EXPECT_FALSE(file.find("c").defined());
  EXPECT_EQ(file.metadata.at("note"), "hello");
}

TEST(Safetensors, RoundTripsEveryDtypeWithTheSpecifiedLayout) {
  test::TempDir dir;
  SafetensorsContents contents;
  contents.tensors = {
      {"f64", torch::randn({3, 2}, torch::kFloat64)},
      {"f32", torch::randn({4})},
      {"f16", torch::randn({2, 2}).to(torch::kFloat16)},
      {"bf16", torch::randn({5}).to(torch::kBFloat16)},
      {"i64", torch::tensor({int64_t{-1}, int64_t{1} << 40}, torch::kInt64)},
      {"i32", torch::tensor({-7, 9}, torch::kInt32)},
      {"i16", torch::tensor({-300}, torch::kInt16)},
      {"i8", torch::tensor({-5, 4, 3}, torch::kInt8)},
      {"u8", torch::tensor({250}, torch::kUInt8)},
      {"bool", torch::tensor({true, false, true})},
      {"empty", torch::zeros({0, 3})},
      {"scalar", torch::tensor(2.5)},
      {"strided", torch::arange(12, torch::kFloat32).reshape({3, 4}).t()},
  };
  contents.metadata = {{"config", "name: x\n"}, {"step", "12"}};
  const std::string path = dir.file("sub/all.safetensors");
  write_safetensors(path, contents);
  const auto back = read_safetensors(path);
  ASSERT_EQ(back.tensors.size(), contents.tensors.size());
  for (size_t i = 0; i < contents.tensors.size(); ++i) {
    SCOPED_TRACE(contents.tensors[i].first);
    EXPECT_EQ(back.tensors[i].first, contents.tensors[i].first);
    EXPECT_EQ(back.tensors[i].second.scalar_type(), contents.tensors[i].second.scalar_type());
    EXPECT_EQ(back.tensors[i].second.sizes(), contents.tensors[i].second.sizes());
    EXPECT_TRUE(torch::equal(back.tensors[i].second, contents.tensors[i].second));
  }
  EXPECT_EQ(back.metadata, contents.metadata);

  // The layout: the header length, a JSON header padded with spaces to 8 bytes, the data.
  const std::string bytes = test::read_file(path);
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = length << 8 | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  EXPECT_EQ(length % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  EXPECT_CONTAINS(bytes.substr(8, length), R"("f32":{"data_offsets":[48,64],"dtype":"F32","shape":[4]})");
  EXPECT_EQ(bytes.substr(8 + length, 48), raw_bytes(contents.tensors[0].second));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(Safetensors, RefusesDamagedFilesNamingTheTensor) {
  test::TempDir dir;
  const std::string data(24, '\x01');
  const auto entry = [](const std::string& name, const std::string& dtype, const std::string& shape, int begin,
                        int end) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
           std::to_string(begin) + "," + std::to_string(end) + "]}";
  };
  struct Case {
    std::string name, bytes, fragment;
  };
  const std::string good = safetensors_bytes("{" + entry("w", "F32", "[6]", 0, 24) + "}", data);
  std::string huge_length = good;
  huge_length[5] = '\x01';
  const std::vector<Case> cases{
      {"short", "abc", ": not a safetensors file: 3 bytes, shorter than the 8-byte header length"},
      {"length", huge_length, ": not a safetensors file: its header length 1099511627831 exceeds the 79 bytes after it"},
      {"not_json", safetensors_bytes("{oops", data), ": not a safetensors file: its header is not JSON"},
      {"list", safetensors_bytes("[1,2]", ""), ": not a safetensors file: its header is not a JSON object"},
      {"truncated", good.substr(0, good.size() - 4),
       ": truncated safetensors file: tensor 'w' ends at data byte 24, but the file holds 20 data bytes"},
      {"appended", good + "xy", ": 2 data bytes after the last tensor belong to no tensor"},
      {"overlap", safetensors_bytes("{" + entry("a", "F32", "[4]", 0, 16) + "," + entry("b", "F32", "[4]", 8, 24) + "}", data),
       ": tensors 'a' and 'b' overlap (data bytes 8-16)"},
      {"hole", safetensors_bytes("{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 16, 24) + "}", data),
       ": data bytes 8-16 belong to no tensor (before 'b')"},
      {"size", safetensors_bytes("{" + entry("w", "F64", "[6]", 0, 24) + "}", data),
       ": tensor 'w': F64 [6] needs 48 bytes, but its data_offsets span 24"},
      {"dtype", safetensors_bytes("{" + entry("w", "F8_E4M3", "[24]", 0, 24) + "}", data),
       ": tensor 'w': dtype \"F8_E4M3\" is not supported (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)"},
      {"shape", safetensors_bytes("{" + entry("w", "F32", "[-6]", 0, 24) + "}", data),
       ": tensor 'w': shape must be a list of sizes >= 0, found [-6]"},
      {"offsets", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[6],"data_offsets":[24,0]}})", data),
       ": tensor 'w': data_offsets must be [begin, end] with 0 <= begin <= end, found [24,0]"},
      {"fields", safetensors_bytes(R"({"w":{"dtype":"F32","shape":[6]}})", data),
       ": tensor 'w': expected {dtype, shape, data_offsets} in the header"},
      {"metadata", safetensors_bytes("{\"__metadata__\":{\"step\":3}," + entry("w", "F32", "[6]", 0, 24) + "}", data),
       ": __metadata__ 'step' must be a string, found 3"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir.file(c.name + ".safetensors");
    test::write_file(path, c.bytes);
    EXPECT_CONTAINS(test::error_message<DataError>([&] { read_safetensors(path); }), path + c.fragment);
  }
  EXPECT_CONTAINS(test::error_message<DataError>([&] { read_safetensors(dir.file("absent.safetensors")); }),
                  "absent.safetensors: safetensors file not found");
}

TEST(Safetensors, RefusesNamesAndDtypesItCannotWrite) {
  test::TempDir dir;
  const std::string path = dir.file("w.safetensors");
  EXPECT_CONTAINS(test::error_message<DataError>([&] {
                    write_safetensors(path, {{{"a", torch::ones({1})}, {"a", torch::ones({1})}}, {}});
                  }),
                  "tensor name 'a' is empty, reserved or given twice");
  EXPECT_CONTAINS(test::error_message<DataError>([&] {
                    write_safetensors(path, {{{"__metadata__", torch::ones({1})}}, {}});
                  }),
                  "reserved");
  EXPECT_CONTAINS(test::error_message<DataError>([&] {
                    write_safetensors(path, {{{"c", torch::ones({1}, torch::kComplexFloat)}}, {}});
                  }),
                  "tensor 'c' has dtype ComplexFloat, which safetensors files of diffuse do not hold");
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}
