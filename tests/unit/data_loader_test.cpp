// DataLoader: determinism from the seed alone, epochs, worker-count and resume invariance,
// drop_last, coverage, flips and error propagation.
#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "diffuse/core/error.h"
#include "diffuse/data/data_loader.h"

using namespace diffuse;

namespace {

// Item i is a 1×2×3 image whose pixel (y, x) = i + 0.01 (3y + x) (so a flip is visible),
// labelled i.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t size, int64_t fail_at = -1) : fail_at_(fail_at) {
    info_ = {size, 1, 2, 3, {"only"}};
  }
  const DatasetInfo& info() const override { return info_; }
  Example get(int64_t index) const override {
    if (index == fail_at_) throw DataError("item " + std::to_string(index) + " is broken");
    auto image = torch::arange(6, torch::kFloat32).view({1, 2, 3}) * 0.01 + static_cast<double>(index);
    return {image, index};
  }

 private:
  int64_t fail_at_;
  DatasetInfo info_;
};

LoaderOptions options_with(int64_t batch, int workers, bool hflip = true, uint64_t seed = 7) {
  LoaderOptions o;
  o.batch_size = batch;
  o.num_workers = workers;
  o.hflip = hflip;
  o.seed = seed;
  return o;
}

std::vector<Batch> take(DataLoader& loader, int count) {
  std::vector<Batch> out;
  for (int i = 0; i < count; ++i) out.push_back(loader.next());
  return out;
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::equal(a[i].images, b[i].images)) << "batch " << i;
    EXPECT_TRUE(torch::equal(a[i].labels, b[i].labels)) << "batch " << i;
  }
}

std::vector<int64_t> labels_of(const Batch& b) {
  return std::vector<int64_t>(b.labels.data_ptr<int64_t>(), b.labels.data_ptr<int64_t>() + b.labels.numel());
}

}  // namespace

TEST(DataLoader, DeterministicGivenSeed) {
  auto data = std::make_shared<CountingDataset>(50);
  DataLoader a(data, options_with(8, 2)), b(data, options_with(8, 2));
  expect_same(take(a, 15), take(b, 15));
  DataLoader c(data, options_with(8, 2, true, 8));
  EXPECT_NE(labels_of(a.next()), labels_of(c.next()));
}

TEST(DataLoader, EpochsHaveDifferentOrders) {
  auto data = std::make_shared<CountingDataset>(40);
  DataLoader loader(data, options_with(40, 0));
  const auto first = labels_of(loader.next());
  const auto second = labels_of(loader.next());
  EXPECT_NE(first, second);
  EXPECT_EQ(epoch_order(40, 7, 0, true), first);
  EXPECT_EQ(epoch_order(40, 7, 1, true), second);
  EXPECT_NE(epoch_order(40, 7, 0, true), epoch_order(40, 8, 0, true));
}

TEST(DataLoader, IdenticalAcrossWorkerCounts) {
  auto data = std::make_shared<CountingDataset>(37);
  DataLoader serial(data, options_with(5, 0));
  const auto reference = take(serial, 30);
  for (int workers : {1, 3}) {
    DataLoader parallel(data, options_with(5, workers));
    expect_same(reference, take(parallel, 30));
  }
}

TEST(DataLoader, ResumeFromStateGivesTheSameStream) {
  auto data = std::make_shared<CountingDataset>(23);
  DataLoader full(data, options_with(4, 2));
  const auto reference = take(full, 20);  // 5 batches an epoch: crosses 4 epoch boundaries
  DataLoader first(data, options_with(4, 3));
  take(first, 7);
  const LoaderState saved = first.state();
  EXPECT_EQ(saved.epoch, 1);
  EXPECT_EQ(saved.position, 8);  // the first sample of batch 2
  DataLoader resumed(data, options_with(4, 1), saved);
  EXPECT_EQ(resumed.state().epoch, 1);
  expect_same(std::vector<Batch>(reference.begin() + 7, reference.end()), take(resumed, 13));
}

TEST(DataLoader, StateTracksEpochAndPosition) {
  auto data = std::make_shared<CountingDataset>(10);
  DataLoader loader(data, options_with(3, 2));
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  take(loader, 3);
  EXPECT_EQ(loader.state().epoch, 1);
  EXPECT_EQ(loader.state().position, 0);
  EXPECT_THROW(DataLoader(data, options_with(3, 0), LoaderState{0, 10}), DataError);
}

TEST(DataLoader, DropLastSkipsTheShortBatch) {
  auto data = std::make_shared<CountingDataset>(10);
  DataLoader loader(data, options_with(4, 1));
  for (const auto& batch : take(loader, 6)) EXPECT_EQ(batch.images.size(0), 4);
}

TEST(DataLoader, WithoutDropLastTheShortBatchComes) {
  auto data = std::make_shared<CountingDataset>(10);
  LoaderOptions o = options_with(4, 2);
  o.drop_last = false;
  DataLoader loader(data, o);
  std::vector<int64_t> sizes;
  for (const auto& batch : take(loader, 6)) sizes.push_back(batch.images.size(0));
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2, 4, 4, 2}));
}

TEST(DataLoader, DatasetSmallerThanABatchWithDropLast) {
  auto data = std::make_shared<CountingDataset>(3);
  try {
    DataLoader loader(data, options_with(8, 0));
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("holds 3 items"), std::string::npos) << m;
    EXPECT_NE(m.find("batch of 8"), std::string::npos) << m;
  }
  LoaderOptions o = options_with(8, 0);
  o.drop_last = false;
  DataLoader loader(data, o);
  EXPECT_EQ(loader.next().images.size(0), 3);
}

TEST(DataLoader, EverySampleOncePerEpoch) {
  auto data = std::make_shared<CountingDataset>(30);
  DataLoader loader(data, options_with(6, 3));
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::multiset<int64_t> seen;
    for (int b = 0; b < 5; ++b)
      for (int64_t label : labels_of(loader.next())) seen.insert(label);
    EXPECT_EQ(seen.size(), 30u);
    EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 30u) << "epoch " << epoch;
  }
}

TEST(DataLoader, UnshuffledOrderIsSequential) {
  auto data = std::make_shared<CountingDataset>(6);
  LoaderOptions o = options_with(3, 0, false);
  o.shuffle = false;
  DataLoader loader(data, o);
  EXPECT_EQ(labels_of(loader.next()), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(labels_of(loader.next()), (std::vector<int64_t>{3, 4, 5}));
}

TEST(DataLoader, FlipsFollowTheHashAndAboutHalf) {
  auto data = std::make_shared<CountingDataset>(400);
  DataLoader loader(data, options_with(400, 2, true));
  const Batch batch = loader.next();
  int flipped = 0;
  for (int64_t i = 0; i < 400; ++i) {
    const int64_t index = batch.labels[i].item<int64_t>();
    const auto original = data->get(index).image;
    const bool is_flipped = torch::equal(batch.images[i], original.flip({2}));
    EXPECT_TRUE(is_flipped || torch::equal(batch.images[i], original));
    EXPECT_EQ(is_flipped, flip_decision(7, 0, index));
    flipped += is_flipped;
  }
  EXPECT_GT(flipped, 150);
  EXPECT_LT(flipped, 250);
}

TEST(DataLoader, WorkerExceptionIsRethrownFromNext) {
  auto data = std::make_shared<CountingDataset>(20, 13);
  LoaderOptions o = options_with(20, 2);
  DataLoader loader(data, o);
  try {
    loader.next();
    FAIL() << "expected the worker's DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("item 13 is broken"), std::string::npos);
  }
  EXPECT_THROW(loader.next(), DataError);
}

TEST(DataLoader, DestructionWhileWorkersWaitJoins) {
  auto data = std::make_shared<CountingDataset>(100);
  for (int i = 0; i < 5; ++i) {
    DataLoader loader(data, options_with(10, 3));
    loader.next();
  }
  SUCCEED();
}

TEST(DataLoader, Throughput) {
  // 28×28 items like Fashion-MNIST; reports images per second (no bound: machines differ).
  class Synthetic : public Dataset {
   public:
    Synthetic() { info_ = {4096, 1, 28, 28, {"x"}}; }
    const DatasetInfo& info() const override { return info_; }
    Example get(int64_t index) const override { return {torch::zeros({1, 28, 28}), index % 10}; }

   private:
    DatasetInfo info_;
  };
  auto data = std::make_shared<Synthetic>();
  DataLoader loader(data, options_with(128, 2));
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 64; ++i) loader.next();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ info ] loader: " << 64 * 128 / seconds << " images/s (2 workers)\n";
}

LoaderOptions rank_options(int64_t batch, int rank, int world) {
  LoaderOptions o = options_with(batch, 1);
  o.rank = rank;
  o.world_size = world;
  return o;
}

TEST(DataLoader, RanksShareEachGlobalBatchInRankOrder) {
  auto data = std::make_shared<CountingDataset>(23);
  DataLoader whole(data, options_with(6, 1));
  DataLoader rank0(data, rank_options(3, 0, 2)), rank1(data, rank_options(3, 1, 2));
  EXPECT_EQ(rank0.batches_per_epoch(), whole.batches_per_epoch());
  for (int k = 0; k < 9; ++k) {  // 3 batches an epoch: crosses two epochs
    const Batch all = whole.next(), a = rank0.next(), b = rank1.next();
    EXPECT_TRUE(torch::equal(torch::cat({a.images, b.images}), all.images)) << "batch " << k;
    EXPECT_TRUE(torch::equal(torch::cat({a.labels, b.labels}), all.labels)) << "batch " << k;
  }
  EXPECT_EQ(rank0.state().position, rank1.state().position);
}

TEST(DataLoader, AStateResumesOnAnotherWorldSizeAtTheSameSample) {
  auto data = std::make_shared<CountingDataset>(24);
  DataLoader whole(data, options_with(4, 0));
  const auto reference = take(whole, 12);  // 6 batches of 4 an epoch
  DataLoader rank0(data, rank_options(4, 0, 2)), rank1(data, rank_options(4, 1, 2));
  take(rank0, 1);
  take(rank1, 1);
  const LoaderState saved = rank0.state();
  EXPECT_EQ(saved.position, 8);  // one global batch of 2 × 4 taken
  DataLoader single(data, options_with(4, 0), saved);
  expect_same(std::vector<Batch>(reference.begin() + 2, reference.end()), take(single, 10));
}

TEST(DataLoader, ShardingRefusesTooSmallADatasetNamingTheRanks) {
  auto data = std::make_shared<CountingDataset>(7);
  try {
    DataLoader loader(data, rank_options(4, 0, 2));
    FAIL() << "expected a DataError";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than one batch of 8 (4 per rank × 2 ranks)"), std::string::npos)
        << e.what();
  }
}
