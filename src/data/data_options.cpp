#include "diffuse/data/data_options.h"

#include <limits>

namespace diffuse {

namespace {

bool holds_pictures(DatasetType type) {
  return type == DatasetType::idx || type == DatasetType::cifar10 ||
         type == DatasetType::image_folder;
}

OptionSchema<DataOptions> make_schema() {
  using O = DataOptions;
  OptionSchema<O> s;
  s.choice("type", &O::type, kDatasetTypeNames,
           "`idx` (MNIST/Fashion-MNIST), `cifar10` (binary batches), `image_folder`, `latents` "
           "(tensor file), "
           "`random` (synthetic uniform pixels for benchmarks: needs `resolution` and `channels`; "
           "`limit` items, "
           "default 1024; 10 classes), `couplings` (the (noise, sample) pairs of `diffuse reflow`: "
           "each image "
           "trains with the noise it was generated from; no `hflip`)");
  s.field("path", &O::path, "folder (or file for `latents`)");
  s.field("split", &O::split, "which split of idx and cifar10 data",
          checks::one_of({"train", "test"}));
  s.field("resolution", &O::resolution, "output size (square); 0 keeps the native size",
          checks::zero_or_int_range<int>(2, kMaxImageSize, "the native size"));
  s.field("channels", &O::channels,
          "output channels: 1 or 3 for idx, cifar10 and image_folder, any for random; 0 keeps the "
          "native channels",
          checks::zero_or_int_range<int>(1, kMaxImageChannels, "the native channels"));
  s.field("hflip", &O::hflip, "random horizontal flips (training augmentation)");
  s.field("allow_upscale", &O::allow_upscale,
          "image folders: allow images smaller than `resolution`");
  s.field("skip_corrupt", &O::skip_corrupt,
          "image folders: skip (and count) unreadable images instead of failing");
  s.field("limit", &O::limit, "use only the first N items (0 = all)",
          checks::int_range<int64_t>(0, std::numeric_limits<int64_t>::max()));
  s.field("num_workers", &O::num_workers, "background loader threads",
          checks::int_range<int>(0, 64));
  s.field("prefetch_batches", &O::prefetch_batches, "batches queued ahead of the trainer",
          checks::int_range<int>(1, 1024));
  s.rule([](const O& o, const OptionFail& fail) {
    if (holds_pictures(o.type) && o.channels != 0 && o.channels != 1 && o.channels != 3)
      fail("channels", "must be 0 (native), 1 or 3 for " +
                           std::string(enum_name(o.type, kDatasetTypeNames)) + " images, found " +
                           std::to_string(o.channels));
    if (o.hflip && o.type == DatasetType::couplings)
      fail("hflip",
           "would flip each sample but not the noise it is coupled to; set it false for couplings");
  });
  return s;
}

}  // namespace

const OptionSchema<DataOptions>& data_options_schema() {
  return built_once<make_schema>();
}

}  // namespace diffuse
