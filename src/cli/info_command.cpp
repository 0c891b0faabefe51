// diffuse info: what a config's dataset looks like (count, shape, classes, per-channel
// statistics) and its model (architecture, parameter count), with --out a preview grid of
// augmented training samples; or what a checkpoint holds (step, model, EMA, resolved config).
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "args.h"
#include "diffuse/config/experiment_config.h"
#include "diffuse/core/atomic_file.h"
#include "diffuse/core/config_node.h"
#include "diffuse/core/device.h"
#include "diffuse/core/error.h"
#include "diffuse/core/text.h"
#include "diffuse/data/data_loader.h"
#include "diffuse/data/dataset.h"
#include "diffuse/eval/denoising_calibration.h"
#include "diffuse/inference/loaded_model.h"
#include "diffuse/io/image_io.h"
#include "diffuse/io/safetensors.h"
#include "diffuse/models/registry.h"
#include "diffuse/train/checkpoint.h"

namespace diffuse::cli {

namespace {

constexpr int64_t kPreviewCount = 64;
constexpr int64_t kPreviewColumns = 8;

// "[0.1234, 0.5000]": four decimals.
std::string join_numbers(const std::vector<double>& values) {
  return "[" + join(values, ", ", [](double value) {
           std::ostringstream text;
           text << std::fixed << std::setprecision(4) << value;
           return text.str();
         }) + "]";
}

// "0=cat, 1=dog": each class name with its label.
std::string join_names(const std::vector<std::string>& names) {
  std::vector<std::string> labelled;
  for (size_t i = 0; i < names.size(); ++i) labelled.push_back(std::to_string(i) + "=" + names[i]);
  return join(labelled);
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

// "unet (preset unet_small), input 1x28x28, 10 classes" and the parameter count line.
std::string describe_model(const ModelOptions& model) {
  const int64_t params = count_model_parameters(model);
  std::ostringstream text;
  text << "model:    " << enum_name(model.arch, kModelArchNames);
  if (!model.preset.empty()) text << " (preset " << model.preset << ")";
  text << ", input " << model.in_channels << "x" << model.image_size << "x" << model.image_size
       << ", " << (model.num_classes > 0 ? std::to_string(model.num_classes) + " classes"
                                         : std::string("unconditional"))
       << (model.learn_sigma ? ", learned sigma" : "") << "\n"
       << "params:   " << params << " (" << std::fixed << std::setprecision(2)
       << static_cast<double>(params) / 1e6 << "M)\n";
  return text.str();
}

// The held-out data of a checkpoint's config: `split` when given, else the test split of the
// formats that have one (idx, cifar10), else the training data itself.
DataOptions held_out_data(const ExperimentConfig& config, const std::string& split) {
  DataOptions data = config.data;
  if (!split.empty()) {
    data.split = split;
  } else if (data.type == DatasetType::idx || data.type == DatasetType::cifar10) {
    data.split = "test";
  } else {
    spdlog::warn("calibration on the training data: {} data has no test split", enum_name(data.type, kDatasetTypeNames));
  }
  return data;
}

std::string format_number(double value) {
  std::ostringstream text;
  text << std::setprecision(4) << value;
  return text.str();
}

// --calibration: the model's denoising error per σ band on held-out images (issue: where is a
// model weak?), printed as a table and, with --out, written as calibration.json and .png.
int calibrate_checkpoint(const Args& args) {
  const std::string path = args.get("--checkpoint");
  // The flags first, so that a bad one is refused before the model and data are read.
  CalibrationOptions options;
  options.bands = static_cast<int>(args.get_int("--bands", options.bands, 1, 64));
  options.images = args.get_int("--images", options.images, 1, 1'000'000);
  options.batch_size = args.get_int("--batch", options.batch_size, 1, 65536);
  const std::string split = args.get("--split");
  if (args.has("--split") && split != "train" && split != "test")
    throw UsageError("--split: expected train or test, found '" + split + "'");
  const auto device = resolve_device(args.get("--device", "auto"), "--device");

  const LoadedModel loaded = load_model_for_inference(path, !args.has("--no-ema"), device);
  const DataOptions data = held_out_data(loaded.config, split);
  const auto dataset = make_dataset(data);
  const NoiseSchedule& schedule = loaded.precond->schedule();
  options.sigma_min = schedule.sigma_min();
  options.sigma_max = schedule.sigma_max();
  options.labels = loaded.config.model.num_classes > 0;
  Precond precond = loaded.precond;
  const LabelledDenoiserFn denoise = [precond](const torch::Tensor& x, const torch::Tensor& sigma,
                                               const torch::Tensor& labels) mutable {
    return precond->denoise(x, sigma, labels);
  };
  const DenoisingCalibration result =
      calibrate_denoiser(denoise, *dataset, options, device, decile_progress("calibration", "batches"));

  std::cout << "calibration: " << result.images << " images of " << data.path << " (split " << data.split << "), "
            << (loaded.using_ema ? "EMA" : "raw") << " weights, " << (options.labels ? "their labels given" : "unconditional")
            << "\n"
            << "error per pixel of D(x0 + sigma n; sigma) against x0, beside the best linear (Wiener) denoiser\n"
            << std::left << std::setw(22) << "  sigma band" << std::setw(12) << "model" << std::setw(12) << "Wiener"
            << std::setw(12) << "D(x) = x" << "model/Wiener\n";
  nlohmann::json bands = nlohmann::json::array();
  for (const auto& band : result.bands) {
    const double ratio = band.ratio();
    std::cout << "  " << std::setw(20) << (format_number(band.sigma_lo) + " - " + format_number(band.sigma_hi))
              << std::setw(12) << format_number(band.mse) << std::setw(12) << format_number(band.wiener_mse)
              << std::setw(12) << format_number(band.identity_mse) << format_number(ratio) << "\n";
    bands.push_back({{"sigma_lo", band.sigma_lo}, {"sigma_hi", band.sigma_hi}, {"mse", band.mse},
                     {"wiener_mse", band.wiener_mse}, {"identity_mse", band.identity_mse}, {"ratio", ratio}});
  }
  if (args.has("--out")) {
    const std::filesystem::path out = args.get("--out");
    std::filesystem::create_directories(out);
    const nlohmann::json json{{"checkpoint", path},   {"step", loaded.step},
                              {"ema", loaded.using_ema}, {"data", data.path},
                              {"split", data.split},  {"images", result.images},
                              {"bands", bands}};
    const std::string picture = (out / ("calibration" + image_extension(3))).string();
    write_text_file_atomic((out / "calibration.json").string(), json.dump(2) + "\n");
    write_calibration_curves(picture, result);
    std::cout << "written:  " << (out / "calibration.json").string() << ", " << picture << "\n";
  }
  return 0;
}

// An exported model (diffuse export / import): its metadata and model; no checksum trailer,
// the safetensors reader checks every offset instead.
int describe_exported_model(const Args& args) {
  const std::string path = args.get("--checkpoint");
  const LoadedModel loaded = load_model_for_inference(path, true, torch::kCPU);
  if (args.has("--verify")) {
    std::cout << path << ": readable exported model, step " << loaded.step << "\n";
    return 0;
  }
  const std::string yaml = to_yaml_string(emit_experiment_config(loaded.config));
  std::cout << "file:     " << path << " (exported model, safetensors)\n"
            << "step:     " << loaded.step << "\n"
            << describe_model(loaded.config.model)
            << "weights:  " << (loaded.using_ema ? "ema" : "raw") << "\n"
            << "classes:  " << loaded.class_names.size() << " (" << join_names(loaded.class_names) << ")\n"
            << "config:\n"
            << yaml;
  return 0;
}

int describe_checkpoint(const Args& args) {
  const std::string path = args.get("--checkpoint");
  if (is_safetensors_path(path)) return describe_exported_model(args);
  CheckpointReader reader(path);
  const CheckpointMeta& meta = reader.meta();
  if (args.has("--verify")) {
    // The checksum and the archive were both read by the reader; no model is built.
    std::cout << path << ": " << (reader.checksum().present ? "ok" : "readable") << ", checksum "
              << describe_checksum(reader.checksum()) << ", step " << meta.step << "\n";
    return 0;
  }
  ConfigNode root = ConfigNode::load_string(meta.config_yaml, path + " (embedded config)");
  const ExperimentConfig config = parse_experiment_config(root);
  std::cout << "file:     " << path << "\n"
            << "checksum: " << describe_checksum(reader.checksum()) << "\n"
            << "step:     " << meta.step << " of " << config.train.steps << "\n"
            << describe_model(config.model)
            << "ema:      " << (reader.has_ema() ? "yes" : "no") << "\n"
            << "classes:  " << meta.class_names.size() << " (" << join_names(meta.class_names) << ")\n"
            << "config:\n"
            << meta.config_yaml << (meta.config_yaml.empty() || meta.config_yaml.back() != '\n' ? "\n" : "");
  return 0;
}

// What the data of `data` would give the model when it is not on disk: the native shape and
// classes of the format (MNIST-style idx 1×28×28, CIFAR-10 3×32×32, random as configured,
// 10 classes each), with data.resolution / data.channels applied; 0 where unknown.
ModelOptions model_without_data(const ExperimentConfig& config) {
  const DataOptions& d = config.data;
  int64_t channels = 0, size = 0, classes = -1;
  switch (d.type) {
    case DatasetType::idx: channels = 1, size = 28, classes = 10; break;
    case DatasetType::cifar10: channels = 3, size = 32, classes = 10; break;
    case DatasetType::random: classes = 10; break;
    case DatasetType::image_folder:
    case DatasetType::latents:
    case DatasetType::couplings: break;
  }
  if (d.channels > 0) channels = d.channels;
  if (d.resolution > 0) size = d.resolution;
  ModelOptions model = config.model;
  if (model.in_channels == 0) model.in_channels = static_cast<int>(channels);
  if (model.image_size == 0) model.image_size = static_cast<int>(size);
  if (model.num_classes < 0) model.num_classes = static_cast<int>(classes);
  return model;
}

int describe_config(const Args& args) {
  const std::string config_path = args.get("--config");
  const ExperimentConfig config = load_experiment_config(config_path, args.all("--set"));

  std::shared_ptr<Dataset> dataset;
  const auto load_start = std::chrono::steady_clock::now();
  try {
    dataset = make_dataset(config.data);
  } catch (const DataError& e) {
    // Data that is not there yet (a CIFAR-10 or latent config before the download) still
    // lets the config's model be summarised when the config or the format fixes its shape;
    // data that is there but unreadable stays an error.
    if (args.has("--out") || std::filesystem::exists(config.data.path)) throw;
    std::cout << "config:   " << config_path << "\n"
              << "dataset:  missing: " << e.what() << "\n";
    const ModelOptions model = model_without_data(config);
    if (model.in_channels < 1 || model.image_size < 1 || model.num_classes < 0) {
      std::cout << "model:    cannot be summarised without the data (set model.in_channels, "
                   "model.image_size and model.num_classes)\n";
      return 0;
    }
    try {
      std::cout << describe_model(model);
    } catch (const ConfigError& model_error) {
      std::cout << "model:    cannot be built: " << model_error.what() << "\n";
    }
    return 0;
  }
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
  // The dataset summary stays useful when the model section does not fit it: say why.
  try {
    std::cout << describe_model(resolve_model_options(config.model, info.channels, info.height,
                                                      static_cast<int64_t>(info.class_names.size())));
  } catch (const ConfigError& e) {
    std::cout << "model:    cannot be built: " << e.what() << "\n";
  }
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
            "per-channel mean/std in [-1, 1], and its model and parameter count; --out also\n"
            "writes a preview grid of 64 augmented training samples. With --checkpoint:\n"
            "the step, model, parameter count, EMA presence and resolved config it holds;\n"
            "--calibration instead measures where the model is weak: its denoising error per sigma\n"
            "band on held-out images beside the best linear (Wiener) denoiser's, with --out DIR\n"
            "also written as DIR/calibration.json and a chart DIR/calibration.png.",
            {
                {"--config", "PATH", "experiment YAML whose data section is summarised"},
                {"--set", "KEY=VALUE", "override a config key, e.g. data.split=test", true},
                {"--out", "DIR", "write DIR/preview.png (a grid of augmented samples), or the calibration files"},
                {"--checkpoint", "PATH", "summarise a checkpoint instead (its checksum is verified)"},
                {"--verify", "", "with --checkpoint: only check its checksum and that it reads (no model is built)"},
                {"--calibration", "", "with --checkpoint: the denoising error per sigma band on held-out images"},
                {"--images", "N", "calibration: held-out images (default 1000)"},
                {"--bands", "K", "calibration: log-spaced sigma bands over the schedule's range (default 8)"},
                {"--split", "SPLIT", "calibration: train | test (default test where the format has one)"},
                {"--batch", "N", "calibration: images per network call (default 250)"},
                {"--no-ema", "", "calibration: the raw weights instead of the EMA"},
                thread_flag(),
            });
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  apply_thread_flag(args);
  if (args.has("--checkpoint") && args.has("--config"))
    throw UsageError("give --config PATH or --checkpoint PATH, not both");
  if (args.has("--verify") && !args.has("--checkpoint")) throw UsageError("--verify needs --checkpoint PATH");
  const bool calibration_only = args.has("--images") || args.has("--bands") || args.has("--split") ||
                                args.has("--batch") || args.has("--no-ema");
  if (calibration_only && !args.has("--calibration"))
    throw UsageError("--images, --bands, --split, --batch and --no-ema need --calibration");
  if (args.has("--calibration")) {
    if (!args.has("--checkpoint")) throw UsageError("--calibration needs --checkpoint PATH");
    if (args.has("--verify")) throw UsageError("give --calibration or --verify, not both");
    return calibrate_checkpoint(args);
  }
  if (args.has("--checkpoint")) return describe_checkpoint(args);
  if (!args.has("--config")) throw UsageError("'diffuse info' needs --config PATH or --checkpoint PATH");
  return describe_config(args);
}

}  // namespace diffuse::cli
