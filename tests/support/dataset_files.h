#pragma once
// Writers of small dataset files in the formats diffuse reads (IDX raw and gzip, CIFAR-10
// binary), so that tests build their own fixtures.
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace diffuse::test {

// IDX bytes: images [N, H, W] uint8 → idx3 (magic 0x803); labels [N] → idx1 (magic 0x801).
std::string idx_images_bytes(const torch::Tensor& images);
std::string idx_labels_bytes(const torch::Tensor& labels);

// Writes `bytes` gzip-compressed with zlib's gzopen.
void write_gzip_file(const std::string& path, const std::string& bytes);

// Writes <folder>/<prefix>-images-idx3-ubyte[.gz] and <prefix>-labels-idx1-ubyte[.gz].
void write_idx_split(const std::string& folder, const std::string& prefix,
                     const torch::Tensor& images, const torch::Tensor& labels, bool gzip);

// A deterministic uint8 image stack [N, H, W] (pixel = (31 n + 7 y + 3 x) mod 256) and
// labels n mod 10.
torch::Tensor pattern_images(int64_t count, int64_t height, int64_t width);
torch::Tensor pattern_labels(int64_t count);

// CIFAR-10 records: images [N, 3, 32, 32] uint8, labels [N].
std::string cifar_batch_bytes(const torch::Tensor& images, const torch::Tensor& labels);

}  // namespace diffuse::test
