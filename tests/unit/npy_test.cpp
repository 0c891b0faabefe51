// .npy reading (io/npy.h): files built byte by byte as NumPy's format specifies them.
#include <gtest/gtest.h>

#include "diffuse/core/error.h"
#include "diffuse/data/dataset.h"
#include "diffuse/io/npy.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;

namespace {

// Version 1: magic, 1, 0, u16 header length, the header padded with spaces to 64 bytes and
// ended by a newline, then the data.
std::string npy_bytes(const std::string& dict, const std::string& data, int version = 1) {
  const size_t prefix = version == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += static_cast<char>(version);
  bytes += '\0';
  for (size_t i = 0; i < (version == 1 ? 2u : 4u); ++i) bytes += static_cast<char>(header.size() >> (8 * i) & 0xFF);
  return bytes + header + data;
}

std::string raw(const torch::Tensor& t) {
  return std::string(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel() * t.element_size()));
}

}  // namespace

TEST(Npy, ReadsCOrderArraysOfEachVersion) {
  test::TempDir dir;
  const auto a = torch::arange(24, torch::kFloat32).reshape({2, 3, 4}) / 7;
  test::write_file(dir.file("a.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", raw(a)));
  EXPECT_TRUE(torch::equal(read_npy(dir.file("a.npy")), a));
  const auto b = torch::tensor({3, -1, 7}, torch::kInt64);
  test::write_file(dir.file("b.npy"), npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", raw(b), 2));
  EXPECT_TRUE(torch::equal(read_npy(dir.file("b.npy")), b));
  const auto c = torch::tensor(1.5f).to(torch::kFloat16);
  test::write_file(dir.file("c.npy"), npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (), }", raw(c)));
  EXPECT_EQ(read_npy(dir.file("c.npy")).dim(), 0);
}

TEST(Npy, RefusesWhatItCannotReadNamingTheFile) {
  test::TempDir dir;
  const std::string data(24, '\0');
  const struct {
    std::string name, bytes, fragment;
  } cases[] = {
      {"magic", "NUMPY and more", ": not a .npy file"},
      {"fortran", npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data),
       ": .npy array is in Fortran order; save it with np.ascontiguousarray(a)"},
      {"big_endian", npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", data),
       ": .npy dtype '>f4' is not supported"},
      {"short", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", data),
       ": .npy shape [2, 4] of <f4 needs 32 data bytes, the file holds 24"},
      {"header", npy_bytes("{'descr': '<f4'}", data), ": .npy header is not {'descr', 'fortran_order', 'shape'}"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    test::write_file(dir.file(c.name + ".npy"), c.bytes);
    EXPECT_CONTAINS(test::error_message<DataError>([&] { read_npy(dir.file(c.name + ".npy")); }),
                    dir.file(c.name + ".npy") + c.fragment);
  }
}

// Latents from NumPy: z.npy with its labels in z.labels.npy.
TEST(Npy, LatentDatasetReadsANpyPair) {
  test::TempDir dir;
  const auto z = torch::randn({3, 4, 2, 2});
  const auto y = torch::tensor({1, 0, 1}, torch::kInt64);
  test::write_file(dir.file("z.npy"), npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4, 2, 2), }", raw(z)));
  DataOptions options;
  options.type = DatasetType::latents;
  options.path = dir.file("z.npy");
  EXPECT_CONTAINS(test::error_message<DataError>([&] { make_dataset(options); }),
                  "z.npy: the labels of .npy latents go in " + dir.file("z.labels.npy"));
  test::write_file(dir.file("z.labels.npy"), npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", raw(y)));
  const auto dataset = make_dataset(options);
  EXPECT_EQ(dataset->info().size, 3);
  EXPECT_EQ(dataset->get(2).label, 1);
  EXPECT_TRUE(torch::equal(dataset->get(1).image, z[1]));
}
