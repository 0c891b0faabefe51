#pragma once
// Features of an image set under one feature network, and their stats files: computed once
// for a reference set (`diffuse eval --save-stats`) and reused, refusing to be compared with
// features of another network.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "diffuse/data/data_options.h"
#include "diffuse/eval/feature_network.h"
#include "diffuse/eval/generative_metrics.h"

namespace diffuse {

// Features of N images: what the metrics need from either side.
struct FeatureSet {
  std::string network;          // FeatureNetwork::identity()
  std::string source;           // where the images came from (image source spec)
  torch::Tensor features;       // [N, F] float32
  torch::Tensor logits;         // [N, K] float32; undefined when the network has no classes
  std::vector<int64_t> labels;  // per image (true or intended class); empty when unknown
  GaussianMoments moments;      // of `features`, float64
};

// Where images come from, as written after --samples/--ref and in train.eval.ref:
//   fashion:train | fashion:test     Fashion-MNIST from Debian's dataset-fashion-mnist
//   TYPE:PATH[:SPLIT]                a dataset of data.type TYPE (idx, cifar10, image_folder)
//   DIR                              the image files in DIR (diffuse sample's output; labels
//                                    from the names' _classK part; grid.* is skipped)
//   FILE.pt                          a tensor [N, C, H, W] in [-1, 1] (diffuse sample --format
//                                    pt; labels from sampling.yaml beside it)
// `limit` > 0 keeps the first `limit` images. `progress` receives (done, total).
using FeatureProgress = std::function<void(int64_t done, int64_t total)>;

// Data-parallel extraction: rank r runs batches r, r + ranks, ... of the one-process batch
// order, and `gather` (every rank's [n, ...] rows, the same n on each, concatenated in rank
// order; a Communicator's all_gather) brings them together, so that every rank ends with
// the FeatureSet one process computes.
struct FeatureSharding {
  int rank = 0;
  int ranks = 1;
  std::function<torch::Tensor(const torch::Tensor&)> gather;
};

FeatureSet extract_features(FeatureNetwork& network, const std::string& source, int64_t limit, int64_t batch_size,
                            const FeatureProgress& progress = {}, const FeatureSharding& sharding = {});
// The same for a dataset described by data options (the trainer's reference).
FeatureSet extract_features(FeatureNetwork& network, const DataOptions& data, const std::string& source,
                            int64_t batch_size, const FeatureProgress& progress = {});
// The same for images already in memory ([N, C, H, W] in [-1, 1]).
FeatureSet extract_features(FeatureNetwork& network, const torch::Tensor& images, std::vector<int64_t> labels,
                            const std::string& source, int64_t batch_size, const FeatureProgress& progress = {});

// Stats files hold a FeatureSet (features, labels, moments, network identity, source; not the
// logits), written atomically. Reading throws DataError naming the path for a file that is
// not one.
void save_feature_stats(const std::string& path, const FeatureSet& set);
FeatureSet load_feature_stats(const std::string& path);
// Whether `path` is a stats file (and not, e.g., a tensor of images).
bool is_feature_stats_file(const std::string& path);

// Throws DataError when the two sets were computed by different feature networks, naming both.
void check_same_network(const FeatureSet& reference, const FeatureSet& samples);

}  // namespace diffuse
