// Checkpoint integrity (DESIGN §4): the CRC-32 trailer written by write_checkpoint is
// verified by every reader; flipped bits, a zeroed block, appended bytes, truncation and a
// damaged trailer are each refused with a message naming the file, while a checkpoint of an
// older diffuse (no trailer, no "checksum" key) still loads.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "diffuse/config/experiment_config.h"
#include "diffuse/core/error.h"
#include "diffuse/models/registry.h"
#include "diffuse/train/checkpoint.h"
#include "support/expect_text.h"
#include "support/test_paths.h"

using namespace diffuse;
namespace fs = std::filesystem;

namespace {

constexpr size_t kTrailerSize = 20;

ExperimentConfig tiny_config() {
  ExperimentConfig c;
  c.model.in_channels = 1;
  c.model.image_size = 8;
  c.model.num_classes = 0;
  c.model.unet.base_channels = 8;
  c.model.unet.channel_mult = {1, 2};
  c.model.unet.num_res_blocks = 1;
  c.model.unet.attention_resolutions = {};
  c.model.unet.num_groups = 4;
  return c;
}


class CheckpointChecksum : public ::testing::Test {
 protected:
  void SetUp() override {
    const ExperimentConfig config = tiny_config();
    net = make_model(config.model);
    meta.config_yaml = to_yaml_string(emit_experiment_config(config));
    meta.step = 7;
    good = dir.file("good.pt");
    write_checkpoint(good, meta, *net, net.get(), nullptr);
    bytes = test::read_file(good);
    ASSERT_GT(bytes.size(), 3 * 4096u);
  }

  // Writes `content` as a checkpoint file and returns the reader's error ("" when it loads).
  std::string error_of(const std::string& name, const std::string& content) {
    const std::string path = dir.file(name);
    test::write_file(path, content);
    return test::error_message<CheckpointError>([&] { CheckpointReader reader(path); });
  }

  test::TempDir dir;
  std::shared_ptr<DiffusionNet> net;
  CheckpointMeta meta;
  std::string good, bytes;
};

}  // namespace

TEST_F(CheckpointChecksum, AWrittenCheckpointVerifiesAndLoads) {
  const ChecksumReport report = verify_checkpoint_checksum(good);
  EXPECT_TRUE(report.present);
  EXPECT_EQ(report.archive_bytes, bytes.size() - kTrailerSize);
  CheckpointReader reader(good);
  EXPECT_TRUE(reader.checksum().present);
  EXPECT_EQ(reader.meta().step, 7);
  auto copy = make_model(tiny_config().model);
  reader.load_module("model", *copy);
  EXPECT_CONTAINS(describe_checksum(reader.checksum()), "ok (CRC-32 ");
}

TEST_F(CheckpointChecksum, EveryKindOfDamageIsRefusedNamingTheFile) {
  std::string flipped = bytes;
  flipped[flipped.size() / 2] = static_cast<char>(flipped[flipped.size() / 2] ^ 0x10);
  std::string text = error_of("flipped.pt", flipped);
  EXPECT_CONTAINS(text, dir.file("flipped.pt") + ": corrupt checkpoint: checksum mismatch");

  // A 4 KiB block from the middle on that is not all zeros already (zero-initialised weights are).
  std::string zeroed = bytes;
  for (size_t begin = bytes.size() / 2; zeroed == bytes && begin + 4096 < bytes.size(); begin += 4096)
    std::fill_n(zeroed.begin() + static_cast<std::ptrdiff_t>(begin), 4096, '\0');
  ASSERT_NE(zeroed, bytes);
  EXPECT_CONTAINS(error_of("zeroed.pt", zeroed), "checksum mismatch");

  // LibTorch's zip reader skips bytes after its directory, so only the trailer notices these.
  EXPECT_CONTAINS(error_of("appended.pt", bytes + "garbage after the end"),
                  "the checksum trailer is no longer at the end");
  EXPECT_CONTAINS(error_of("no_trailer.pt", bytes.substr(0, bytes.size() - kTrailerSize)),
                  "the checksum trailer is no longer at the end");
  EXPECT_CONTAINS(error_of("short.pt", bytes.substr(0, bytes.size() - 1)), dir.file("short.pt") + ": ");
  EXPECT_CONTAINS(error_of("half.pt", bytes.substr(0, bytes.size() / 2)), "not a readable checkpoint");

  std::string bad_length = bytes;
  bad_length[bad_length.size() - 12] = static_cast<char>(bad_length[bad_length.size() - 12] ^ 0x01);
  EXPECT_CONTAINS(error_of("bad_length.pt", bad_length), "archive bytes but");
  std::string bad_crc = bytes;
  bad_crc.back() = static_cast<char>(bad_crc.back() ^ 0x80);
  EXPECT_CONTAINS(error_of("bad_crc.pt", bad_crc), "checksum mismatch");

  // The untouched file still loads: the errors above come from the damage.
  EXPECT_EQ(error_of("copy.pt", bytes), "");
}

TEST_F(CheckpointChecksum, AnOlderCheckpointWithoutChecksumStillLoads) {
  // The layout diffuse wrote before checksums: the same keys, no "checksum", no trailer.
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string("diffuse-checkpoint-1")));
  archive.write("config", c10::IValue(meta.config_yaml));
  archive.write("class_names", c10::IValue(std::string()));
  archive.write("step", c10::IValue(int64_t{3}));
  archive.write("loader_epoch", c10::IValue(int64_t{0}));
  archive.write("loader_position", c10::IValue(int64_t{0}));
  c10::Dict<std::string, torch::Tensor> state;
  for (const auto& p : net->named_parameters(true)) state.insert(p.key(), p.value().detach());
  for (const auto& b : net->named_buffers(true)) state.insert(b.key(), b.value().detach());
  archive.write("model", c10::IValue(state));
  const std::string old = dir.file("old.pt");
  archive.save_to(old);

  EXPECT_FALSE(verify_checkpoint_checksum(old).present);
  CheckpointReader reader(old);
  EXPECT_FALSE(reader.checksum().present);
  EXPECT_EQ(reader.meta().step, 3);
  auto copy = make_model(tiny_config().model);
  reader.load_module("model", *copy);
  EXPECT_CONTAINS(describe_checksum(reader.checksum()), "none");
}
