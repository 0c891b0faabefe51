// The shared core helpers: atomic writes and copies, whole-file reads, text joining and
// name tables, and the round-robin batch layout over ranks.
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "diffuse/core/atomic_file.h"
#include "diffuse/core/error.h"
#include "diffuse/core/file_io.h"
#include "diffuse/core/round_robin.h"
#include "diffuse/core/shape_text.h"
#include "diffuse/core/text.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

struct Entry {
  const char* name;
  int value;
};
constexpr std::array<Entry, 3> kTable{{{"alpha", 1}, {"beta", 2}, {"gamma", 3}}};

}  // namespace

TEST(Text, JoinsStringsAndNumbers) {
  EXPECT_EQ(join(std::vector<std::string>{"a", "b", "c"}), "a, b, c");
  EXPECT_EQ(join(std::vector<std::string>{}), "");
  EXPECT_EQ(join(std::vector<int>{3, 1, 4}, " | "), "3 | 1 | 4");
  EXPECT_EQ(
      join(std::vector<double>{0.5, 2.0}, ", ", [](double v) { return std::to_string(v * 2); }),
      "1.000000, 4.000000");
  EXPECT_EQ(shape_text(std::vector<int64_t>{2, 3, 8, 8}), "[2, 3, 8, 8]");
  EXPECT_EQ(shape_text(std::vector<int64_t>{}), "[]");
}

TEST(Text, FindsTableEntriesByName) {
  const Entry* beta = find_by_name(kTable, "beta");
  ASSERT_NE(beta, nullptr);
  EXPECT_EQ(beta->value, 2);
  EXPECT_EQ(find_by_name(kTable, "delta"), nullptr);
  EXPECT_EQ(join(names_of(kTable)), "alpha, beta, gamma");
  EXPECT_EQ(join(names_of(kTable, [](const Entry& e) { return e.value != 2; })), "alpha, gamma");
}

TEST(AtomicFile, WritesCopiesAndLeavesNoTempFileOnFailure) {
  test::TempDir dir;
  const std::string path = dir.file("sub/out.txt");
  write_text_file_atomic(path, "one");
  EXPECT_EQ(test::read_file(path), "one");
  copy_file_atomic(path, dir.file("copy.txt"));
  EXPECT_EQ(test::read_file(dir.file("copy.txt")), "one");
  EXPECT_FALSE(fs::exists(dir.file("copy.txt.tmp")));

  EXPECT_THROW(write_file_atomic_at(path,
                                    [](const std::string& temp) {
                                      test::write_file(temp, "half");
                                      throw std::runtime_error("stop");
                                    }),
               std::runtime_error);
  EXPECT_EQ(test::read_file(path), "one");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(FileIo, ReadsBytesAndNamesAMissingFile) {
  test::TempDir dir;
  test::write_file(dir.file("b.bin"), std::string("a\0b", 3));
  EXPECT_EQ(read_file_bytes(dir.file("b.bin")), std::string("a\0b", 3));
  const std::string missing = dir.file("none.bin");
  EXPECT_EQ(test::error_message<DataError>([&] { read_file_bytes(missing); }),
            missing + ": cannot open for reading");
  EXPECT_EQ(test::error_message<DataError>([&] { read_file_bytes(missing, "the metrics file"); }),
            missing + ": cannot open the metrics file for reading");
}

TEST(RoundRobin, DealsBatchesAndReassemblesTheOneProcessOrder) {
  // 7 rows in batches of 2 over 3 ranks: batches [0,2) [2,4) [4,6) [6,7); rank 0 has two.
  const RoundRobinBatches layout{7, 2, 3};
  EXPECT_EQ(layout.batches(), 4);
  EXPECT_EQ(layout.padded_rows(), 4);
  const auto rank0 = layout.batches_of(0);
  ASSERT_EQ(rank0.size(), 2u);
  EXPECT_EQ(rank0[1].begin, 6);
  EXPECT_EQ(rank0[1].end, 7);
  EXPECT_EQ(layout.batches_of(2).size(), 1u);

  const auto all = torch::arange(7, torch::kFloat32).view({7, 1});
  std::vector<torch::Tensor> sent;
  for (int64_t rank = 0; rank < 3; ++rank) {
    std::vector<torch::Tensor> rows;
    for (const auto& batch : layout.batches_of(rank))
      rows.push_back(all.narrow(0, batch.begin, batch.end - batch.begin));
    const auto padded = layout.pad(torch::cat(rows));
    EXPECT_EQ(padded.size(0), layout.padded_rows());
    sent.push_back(padded);
  }
  EXPECT_TRUE(torch::equal(layout.reassemble(torch::cat(sent)), all));
}
