#include "diffuse/data/data_loader.h"

#include <numeric>

#include "diffuse/core/error.h"

namespace diffuse {

namespace {

// Distinct stream constants so that the order and the flip hashes never coincide.
constexpr uint64_t kOrderStream = 0x6f72646572000000ULL;  // "order"
constexpr uint64_t kFlipStream = 0x666c697000000000ULL;   // "flip"
constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ULL;

// A splitmix64 counter stream: state advances by the golden gamma, each output is mixed.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}
  uint64_t next() {
    state_ += kGoldenGamma;
    return splitmix64(state_);
  }
  // Uniform in [0, bound) without modulo bias (rejects the short top range).
  uint64_t below(uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;
    while (true) {
      const uint64_t r = next();
      if (r >= threshold) return r % bound;
    }
  }

 private:
  uint64_t state_;
};

}  // namespace

std::vector<int64_t> epoch_order(int64_t size, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> order(static_cast<size_t>(size));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!shuffle) return order;
  SplitMix64 rng(splitmix64(splitmix64(seed ^ kOrderStream) ^ static_cast<uint64_t>(epoch)));
  // Fisher–Yates: position i takes a uniform pick among the first i + 1 items.
  for (int64_t i = size - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

bool flip_decision(uint64_t seed, int64_t epoch, int64_t index) {
  const uint64_t h = splitmix64(splitmix64(splitmix64(seed ^ kFlipStream) ^
                                           static_cast<uint64_t>(epoch)) ^
                                static_cast<uint64_t>(index));
  return (h >> 63) != 0;
}

LoaderOptions make_loader_options(const DataOptions& data, int64_t batch_size, uint64_t seed) {
  LoaderOptions options;
  options.batch_size = batch_size;
  options.hflip = data.hflip;
  options.seed = seed;
  options.num_workers = data.num_workers;
  options.prefetch_batches = data.prefetch_batches;
  return options;
}

DataLoader::DataLoader(std::shared_ptr<Dataset> dataset, LoaderOptions options, LoaderState start)
    : dataset_(std::move(dataset)), options_(options), start_(start) {
  if (!dataset_) throw std::invalid_argument("DataLoader: null dataset");
  if (options_.batch_size < 1)
    throw DataError("batch size must be >= 1, found " + std::to_string(options_.batch_size));
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size)
    throw std::invalid_argument("DataLoader: rank " + std::to_string(options_.rank) + " outside a world of " +
                                std::to_string(options_.world_size));
  if (options_.world_size > 1 && !options_.drop_last)
    throw std::invalid_argument("DataLoader: sharding a batch across ranks needs drop_last");
  global_batch_ = options_.batch_size * options_.world_size;
  const int64_t size = dataset_->info().size;
  if (options_.drop_last && size < global_batch_)
    throw DataError("the dataset holds " + std::to_string(size) + " items, fewer than one batch of " +
                    std::to_string(global_batch_) +
                    (options_.world_size > 1 ? " (" + std::to_string(options_.batch_size) + " per rank × " +
                                                   std::to_string(options_.world_size) + " ranks)"
                                             : std::string()) +
                    ", and drop_last discards incomplete batches: lower train.batch_size or "
                    "data.limit, or use more data");
  if (size == 0) throw DataError("the dataset is empty");
  auto batches_in = [&](int64_t samples) {
    return options_.drop_last ? samples / global_batch_ : (samples + global_batch_ - 1) / global_batch_;
  };
  batches_per_epoch_ = batches_in(size);
  if (start_.epoch < 0 || start_.position < 0 || start_.position >= size)
    throw DataError("loader state (epoch " + std::to_string(start_.epoch) + ", sample " +
                    std::to_string(start_.position) + ") does not fit an epoch of " + std::to_string(size) +
                    " samples (was the dataset changed?)");
  first_epoch_batches_ = batches_in(size - start_.position);
  options_.prefetch_batches = std::max(1, options_.prefetch_batches);
  for (int w = 0; w < options_.num_workers; ++w) workers_.emplace_back([this] { work(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  space_.notify_all();
  ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

LoaderState DataLoader::state_at(int64_t sequence) const {
  if (sequence < first_epoch_batches_) return {start_.epoch, start_.position + sequence * global_batch_};
  const int64_t later = sequence - first_epoch_batches_;
  return {start_.epoch + 1 + later / batches_per_epoch_, (later % batches_per_epoch_) * global_batch_};
}

LoaderState DataLoader::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_at(consumed_);
}

Batch DataLoader::build(int64_t sequence, std::vector<int64_t>& order, int64_t& order_epoch) const {
  const LoaderState at = state_at(sequence);
  const DatasetInfo& info = dataset_->info();
  if (order_epoch != at.epoch) {
    order = epoch_order(info.size, options_.seed, at.epoch, options_.shuffle);
    order_epoch = at.epoch;
  }
  const int64_t begin = at.position + options_.rank * options_.batch_size;
  const int64_t count = std::min(options_.batch_size, info.size - begin);
  Batch batch;
  const auto host = torch::TensorOptions().pinned_memory(options_.pin_memory);
  batch.images = torch::empty({count, info.channels, info.height, info.width}, host.dtype(torch::kFloat32));
  batch.labels = torch::empty({count}, host.dtype(torch::kInt64));
  auto* labels = batch.labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t index = order[static_cast<size_t>(begin + i)];
    Example example = dataset_->get(index);
    if (options_.hflip && flip_decision(options_.seed, at.epoch, index))
      example.image = example.image.flip({2});
    batch.images[i].copy_(example.image);
    labels[i] = example.label;
    if (example.noise.defined()) {
      if (!batch.noise.defined()) batch.noise = torch::empty_like(batch.images);
      batch.noise[i].copy_(example.noise);
    }
  }
  return batch;
}

void DataLoader::work() {
  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  while (true) {
    int64_t sequence = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      space_.wait(lock, [this] {
        return stopping_ || claimed_ < consumed_ + options_.prefetch_batches;
      });
      if (stopping_) return;
      sequence = claimed_++;
    }
    Slot slot;
    try {
      slot.batch = build(sequence, order, order_epoch);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.emplace(sequence, std::move(slot));
    }
    ready_.notify_all();
  }
}

Batch DataLoader::next() {
  if (workers_.empty()) {
    Batch batch = build(consumed_, local_order_, local_order_epoch_);
    std::lock_guard<std::mutex> lock(mutex_);
    ++consumed_;
    return batch;
  }
  Batch batch;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [this] { return done_.count(consumed_) > 0; });
    auto it = done_.find(consumed_);
    // A failed batch stays in place: every later call rethrows the same error.
    if (it->second.error) std::rethrow_exception(it->second.error);
    batch = std::move(it->second.batch);
    done_.erase(it);
    ++consumed_;
  }
  space_.notify_all();
  return batch;
}

}  // namespace diffuse
