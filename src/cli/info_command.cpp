// diffuse info: what a config's dataset looks like (count, shape, classes, per-channel
// statistics) and, with --out, a preview grid of augmented training samples.
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "args.h"
#include "diffuse/core/error.h"
#include "diffuse/core/experiment_config.h"
#include "diffuse/data/data_loader.h"
#include "diffuse/data/dataset.h"
#include "diffuse/io/image_io.h"

namespace diffuse::cli {

namespace {

constexpr int64_t kPreviewCount = 64;
constexpr int64_t kPreviewColumns = 8;

std::string join_numbers(const std::vector<double>& values) {
  std::ostringstream text;
  text << std::fixed << std::setprecision(4) << "[";
  for (size_t i = 0; i < values.size(); ++i) text << (i ? ", " : "") << values[i];
  text << "]";
  return text.str();
}

std::string join_names(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size(); ++i)
    text += (i ? ", " : "") + std::to_string(i) + "=" + names[i];
  return text;
}

// Writes a grid of the first batch a training loader would return (flips included).
std::string write_preview(const std::shared_ptr<Dataset>& dataset, const ExperimentConfig& config,
                          const std::string& out_dir) {
  const DatasetInfo& info = dataset->info();
  if (info.channels != 1 && info.channels != 3) {
    spdlog::warn("no preview: images with {} channels cannot be shown", info.channels);
    return "";
  }
  LoaderOptions options = make_loader_options(config.data, std::min(kPreviewCount, info.size),
                                               static_cast<uint64_t>(config.train.seed));
  DataLoader loader(dataset, options);
  const Batch batch = loader.next();
  const std::string path =
      (std::filesystem::path(out_dir) / ("preview" + image_extension(info.channels))).string();
  write_image_grid(path, batch.images, kPreviewColumns);
  return path;
}

int describe_config(const Args& args) {
  const std::string config_path = args.get("--config");
  const ExperimentConfig config = load_experiment_config(config_path, args.all("--set"));

  const auto load_start = std::chrono::steady_clock::now();
  const auto dataset = make_dataset(config.data);
  const double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  spdlog::info("loaded {} items from {} in {:.2f} s", dataset->info().size, config.data.path,
               load_seconds);
  const DatasetInfo& info = dataset->info();
  const ChannelStats stats = compute_channel_stats(*dataset);

  std::cout << "config:   " << config_path << "\n"
            << "dataset:  " << enum_name(config.data.type, kDatasetTypeNames) << " "
            << config.data.path << " (split " << config.data.split << ")\n"
            << "items:    " << info.size << "\n"
            << "shape:    " << info.channels << "x" << info.height << "x" << info.width
            << " (CxHxW)\n"
            << "classes:  " << info.class_names.size() << " (" << join_names(info.class_names)
            << ")\n"
            << "mean:     " << join_numbers(stats.mean) << "\n"
            << "std:      " << join_numbers(stats.std) << "\n";
  if (args.has("--out")) {
    const std::string preview = write_preview(dataset, config, args.get("--out"));
    if (!preview.empty()) std::cout << "preview:  " << preview << "\n";
  }
  return 0;
}

}  // namespace

int run_info(const std::vector<std::string>& argv) {
  Args args("info",
            "Summarise the dataset of a config: item count, image shape, class names and\n"
            "per-channel mean/std in [-1, 1]; --out also writes a preview grid of 64\n"
            "augmented training samples.",
            {
                {"--config", "PATH", "experiment YAML whose data section is summarised"},
                {"--set", "KEY=VALUE", "override a config key, e.g. data.split=test", true},
                {"--out", "DIR", "write DIR/preview.png (a grid of augmented samples)"},
                {"--checkpoint", "PATH", "summarise a checkpoint instead"},
            });
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  if (args.has("--checkpoint")) throw Error("diffuse info --checkpoint is not built yet");
  if (!args.has("--config")) throw UsageError("'diffuse info' needs --config PATH or --checkpoint PATH");
  return describe_config(args);
}

}  // namespace diffuse::cli
