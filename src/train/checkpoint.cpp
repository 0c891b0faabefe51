#include "diffuse/train/checkpoint.h"

#include <spdlog/spdlog.h>

#include <zlib.h>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "diffuse/core/atomic_file.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/config/experiment_config.h"
#include "train/named_weights.h"

namespace diffuse {
namespace {

constexpr const char* kFormat = "diffuse-checkpoint-1";

// The trailer after the LibTorch archive: magic, archive length (u64 little-endian), CRC-32
// of the archive bytes (u32 little-endian). A whole-file checksum rather than one per tensor:
// it also covers the metadata, the optimizer state and the zip directory, and its length
// field catches truncation; the archive's "checksum" key catches a trailer that is no
// longer at the end (bytes appended) or was cut off. LibTorch's zip reader finds its
// directory from the end and skips trailing bytes, so older diffuse versions still read
// these files.
constexpr std::array<char, 8> kTrailerMagic{'D', 'F', 'S', 'C', 'R', 'C', '3', '2'};
constexpr size_t kTrailerSize = kTrailerMagic.size() + 8 + 4;
constexpr const char* kChecksumKey = "checksum";
constexpr const char* kChecksumKind = "crc32-trailer";

// CRC-32 of the first `length` bytes of `path`, read in chunks (checkpoints can be many GB).
uint32_t file_crc32(const std::string& path, uint64_t length) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path + ": cannot open for reading");
  std::vector<char> buffer(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  for (uint64_t left = length; left > 0;) {
    const auto chunk = static_cast<std::streamsize>(std::min<uint64_t>(left, buffer.size()));
    if (!in.read(buffer.data(), chunk)) throw CheckpointError(path + ": read failed while checking the checksum");
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<uInt>(chunk));
    left -= static_cast<uint64_t>(chunk);
  }
  return static_cast<uint32_t>(crc);
}

void put_le(char* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

uint64_t get_le(const char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return value;
}

void append_checksum_trailer(const std::string& path) {
  const uint64_t length = std::filesystem::file_size(path);
  std::array<char, kTrailerSize> trailer{};
  std::memcpy(trailer.data(), kTrailerMagic.data(), kTrailerMagic.size());
  put_le(trailer.data() + 8, length, 8);
  put_le(trailer.data() + 16, file_crc32(path, length), 4);
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out.write(trailer.data(), static_cast<std::streamsize>(trailer.size()));
  out.flush();
  if (!out) throw CheckpointError(path + ": cannot write the checksum (disk full?)");
}

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "%08x", value);
  return text;
}

// Parameters and buffers by dotted name, as one dictionary (readable with shape checks).
c10::Dict<std::string, torch::Tensor> module_state(const torch::nn::Module& module) {
  c10::Dict<std::string, torch::Tensor> state;
  for (const auto& p : module.named_parameters(true)) state.insert(p.key(), p.value().detach().cpu());
  for (const auto& b : module.named_buffers(true)) state.insert(b.key(), b.value().detach().cpu());
  return state;
}

std::string join_lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += s + "\n";
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointMeta& meta,
                      const torch::nn::Module& model, const torch::nn::Module* ema,
                      torch::optim::Optimizer* optimizer) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kFormat)));
  archive.write(kChecksumKey, c10::IValue(std::string(kChecksumKind)));
  archive.write("config", c10::IValue(meta.config_yaml));
  archive.write("class_names", c10::IValue(join_lines(meta.class_names)));
  archive.write("step", c10::IValue(meta.step));
  archive.write("loader_epoch", c10::IValue(meta.loader_epoch));
  archive.write("loader_sample", c10::IValue(meta.loader_position));
  if (meta.rng_state.defined()) archive.write("rng_state", meta.rng_state, /*is_buffer=*/true);
  if (meta.default_rng_state.defined())
    archive.write("default_rng_state", meta.default_rng_state, /*is_buffer=*/true);
  if (meta.loss_window.defined() && meta.loss_window_steps > 0) {
    archive.write("loss_window", meta.loss_window, /*is_buffer=*/true);
    archive.write("loss_window_steps", c10::IValue(meta.loss_window_steps));
  }
  archive.write("model", c10::IValue(module_state(model)));
  if (ema) archive.write("ema", c10::IValue(module_state(*ema)));
  if (optimizer) {
    torch::serialize::OutputArchive opt;
    optimizer->save(opt);
    archive.write("optimizer", opt);
  }
  write_file_atomic_at(
      path,
      [&](const std::string& tmp) {
        try {
          archive.save_to(tmp);
          append_checksum_trailer(tmp);
        } catch (const c10::Error& e) {
          throw CheckpointError(path + ": cannot write checkpoint: " + e.what_without_backtrace());
        }
      },
      "the temp checkpoint");
}

ChecksumReport verify_checkpoint_checksum(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw CheckpointError(path + ": checkpoint file not found");
  if (!fs::is_regular_file(path, ec)) throw CheckpointError(path + ": is not a regular file");
  const uint64_t size = fs::file_size(path, ec);
  if (ec) throw CheckpointError(path + ": cannot read the file size: " + ec.message());
  ChecksumReport report;
  if (size < kTrailerSize) return report;
  std::array<char, kTrailerSize> trailer{};
  {
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(size - kTrailerSize));
    if (!in.read(trailer.data(), static_cast<std::streamsize>(trailer.size())))
      throw CheckpointError(path + ": cannot read the file (permissions?)");
  }
  if (std::memcmp(trailer.data(), kTrailerMagic.data(), kTrailerMagic.size()) != 0) return report;
  report.present = true;
  report.archive_bytes = get_le(trailer.data() + 8, 8);
  report.crc32 = static_cast<uint32_t>(get_le(trailer.data() + 16, 4));
  if (report.archive_bytes != size - kTrailerSize)
    throw CheckpointError(path + ": corrupt checkpoint: its checksum trailer records " +
                          std::to_string(report.archive_bytes) + " archive bytes but " +
                          std::to_string(size - kTrailerSize) + " precede it (truncated or spliced file)");
  const uint32_t actual = file_crc32(path, report.archive_bytes);
  if (actual != report.crc32)
    throw CheckpointError(path + ": corrupt checkpoint: checksum mismatch (CRC-32 of its " +
                          std::to_string(report.archive_bytes) + " archive bytes is " + hex32(actual) +
                          ", the trailer records " + hex32(report.crc32) + "); use another checkpoint");
  return report;
}

std::string describe_checksum(const ChecksumReport& report) {
  if (!report.present) return "none (written before diffuse checksummed checkpoints; not verified)";
  return "ok (CRC-32 " + hex32(report.crc32) + " of " + std::to_string(report.archive_bytes) + " bytes)";
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  checksum_ = verify_checkpoint_checksum(path);
  try {
    archive_.load_from(path);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": not a readable checkpoint (truncated or not written by diffuse): " +
                          split_lines(e.what_without_backtrace()).front());
  }
  c10::IValue value;
  if (!archive_.try_read("format", value) || !value.isString() || value.toStringRef() != kFormat)
    throw CheckpointError(path + ": not a diffuse checkpoint (no '" + std::string(kFormat) +
                          "' format tag; was it written by another tool?)");
  if (!checksum_.present) {
    c10::IValue kind;
    if (archive_.try_read(kChecksumKey, kind))
      throw CheckpointError(path + ": corrupt checkpoint: the checksum trailer is no longer at the end of the "
                            "file (bytes were appended after it, or it was cut off)");
    spdlog::warn("{}: checkpoint without a checksum (written by an older diffuse); its bytes cannot be verified",
                 path);
  }
  auto read_string = [&](const char* key) {
    c10::IValue v;
    if (!archive_.try_read(key, v) || !v.isString())
      throw CheckpointError(path_ + ": checkpoint lacks '" + key + "'");
    return v.toStringRef();
  };
  auto read_int = [&](const char* key) {
    c10::IValue v;
    if (!archive_.try_read(key, v) || !v.isInt())
      throw CheckpointError(path_ + ": checkpoint lacks '" + key + "'");
    return v.toInt();
  };
  meta_.config_yaml = read_string("config");
  meta_.class_names = split_lines(read_string("class_names"));
  meta_.step = read_int("step");
  meta_.loader_epoch = read_int("loader_epoch");
  c10::IValue sample;
  if (archive_.try_read("loader_sample", sample) && sample.isInt()) {
    meta_.loader_position = sample.toInt();
  } else {
    // Written before the loader counted samples: a batch index of one process's batches.
    const YAML::Node batch = YAML::Load(meta_.config_yaml)["train"]["batch_size"];
    meta_.loader_position = read_int("loader_position") * (batch ? batch.as<int64_t>() : TrainOptions{}.batch_size);
  }
  archive_.try_read("rng_state", meta_.rng_state, /*is_buffer=*/true);
  archive_.try_read("default_rng_state", meta_.default_rng_state, /*is_buffer=*/true);
  c10::IValue window_steps;
  if (archive_.try_read("loss_window_steps", window_steps) && window_steps.isInt() &&
      archive_.try_read("loss_window", meta_.loss_window, /*is_buffer=*/true))
    meta_.loss_window_steps = window_steps.toInt();
  c10::IValue ema;
  has_ema_ = archive_.try_read("ema", ema);
}

void CheckpointReader::load_module(const std::string& section, torch::nn::Module& module) {
  c10::IValue value;
  if (!archive_.try_read(section, value) || !value.isGenericDict())
    throw CheckpointError(path_ + ": checkpoint has no '" + section + "' weights");
  std::map<std::string, torch::Tensor> weights;
  for (const auto& entry : value.toGenericDict()) weights[entry.key().toStringRef()] = entry.value().toTensor();
  load_named_weights(module, weights, path_ + ": " + section);
}

void CheckpointReader::load_optimizer(torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive opt;
  if (!archive_.try_read("optimizer", opt))
    throw CheckpointError(path_ + ": checkpoint has no optimizer state, so training cannot resume from it");
  try {
    optimizer.load(opt);
  } catch (const c10::Error& e) {
    throw CheckpointError(path_ + ": optimizer state does not fit this model: " +
                          split_lines(e.what_without_backtrace()).front());
  }
}

}  // namespace diffuse
