// diffuse eval: FD, KID, precision/recall and class accuracy of generated images against
// reference images or their stats file, under one feature network.
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "args.h"
#include "diffuse/core/atomic_file.h"
#include "diffuse/core/device.h"
#include "diffuse/core/error.h"
#include "diffuse/eval/evaluate.h"
#include "distributed_launch.h"

namespace diffuse::cli {
namespace {

std::vector<FlagSpec> eval_flags() {
  return with_distributed_flags({
      {"--samples", "SRC", "the generated images"},
      {"--ref", "SRC", "reference images, or a stats file from --save-stats"},
      {"--features", "NET", "feature network: a diffuse classifier checkpoint, or torchscript:PATH"},
      {"--feature-size", "N", "torchscript: resize to N x N, 0-4096 (default 0 = as is)"},
      {"--feature-channels", "C", "torchscript: 1 or 3 input channels (default 3; grey is repeated)"},
      {"--feature-range", "R", "torchscript: input values uint8 ([0, 255], default), unit ([0, 1]) or minus1_1"},
      {"--classes", "", "also report class accuracy (samples need labels, the network classes)"},
      {"--limit", "N", "use the first N samples, 1-10000000 (default all)"},
      {"--ref-limit", "N", "use the first N reference images, 1-10000000 (default all)"},
      {"--save-stats", "FILE", "write the reference's features to FILE for later --ref FILE"},
      {"--kid-subsets", "S", "KID subsets, 1-10000 (default 100)"},
      {"--kid-subset-size", "M", "images per KID subset, 2-100000 (default 1000, capped at the set sizes)"},
      {"--k", "K", "neighbours of the precision/recall manifolds, 1-100 (default 3)"},
      {"--seed", "S", "seed of the KID subsets (default 0)"},
      {"--batch-size", "B", "images per network batch, 1-65536 (default 256)"},
      {"--no-ema", "", "classifier feature network: use the raw weights instead of the EMA weights"},
      {"--out", "FILE", "write the metrics as JSON to FILE"},
      thread_flag(),
  });
}

FeatureInputRange feature_range(const std::string& name) {
  if (name == "uint8") return FeatureInputRange::uint8;
  if (name == "unit") return FeatureInputRange::unit;
  if (name == "minus1_1") return FeatureInputRange::minus_one_one;
  throw UsageError("--feature-range: expected uint8, unit or minus1_1, found '" + name + "'");
}

// What the flags ask for, all checked before any rank joins or the network loads.
struct EvalOptions {
  std::string ref_spec;
  std::string features_spec;
  TorchScriptInput input;
  bool torchscript = false;  // --features torchscript:PATH, else a classifier checkpoint
  int64_t batch = 0;
  int64_t limit = 0;
  int64_t ref_limit = 0;
  EvalMetricsOptions metrics;
};

// The torchscript input flags, and the flags that only one kind of feature network takes.
void read_feature_network_flags(const Args& args, EvalOptions& o) {
  o.input.size = args.get_int("--feature-size", 0, 0, 4096);
  o.input.channels = args.get_int("--feature-channels", 3, 1, 3);
  if (o.input.channels == 2) throw UsageError("--feature-channels: expected 1 or 3, found 2");
  o.input.range = feature_range(args.get("--feature-range", "uint8"));
  o.torchscript = o.features_spec.rfind("torchscript:", 0) == 0;
  for (const char* flag : {"--feature-size", "--feature-channels", "--feature-range"})
    if (args.has(flag) && !o.torchscript) throw UsageError(std::string(flag) + " applies to --features torchscript:PATH only");
  if (args.has("--no-ema") && o.torchscript) throw UsageError("--no-ema applies to a classifier feature network only");
}

EvalOptions read_eval_options(const Args& args) {
  EvalOptions o;
  o.ref_spec = args.require("--ref");
  o.features_spec = args.require("--features");
  if (!args.has("--samples") && !args.has("--save-stats"))
    throw UsageError("give --samples to evaluate, or --save-stats to only compute the reference's stats");
  read_feature_network_flags(args, o);
  o.batch = args.get_int("--batch-size", 256, 1, 65536);
  o.limit = args.get_int("--limit", 0, 1, 10'000'000);
  o.ref_limit = args.get_int("--ref-limit", 0, 1, 10'000'000);
  o.metrics.kid_subsets = args.get_int("--kid-subsets", 100, 1, 10000);
  o.metrics.kid_subset_size = args.get_int("--kid-subset-size", 1000, 2, 100000);
  o.metrics.pr_neighbours = args.get_int("--k", 3, 1, 100);
  o.metrics.seed = static_cast<uint64_t>(args.get_int("--seed", 0, 0, INT64_MAX));
  o.metrics.class_accuracy = args.has("--classes");
  return o;
}

FeatureSharding feature_sharding(Communicator& communicator) {
  FeatureSharding sharding;
  sharding.rank = communicator.rank();
  sharding.ranks = communicator.world_size();
  sharding.gather = [&communicator](const torch::Tensor& rows) {
    return communicator.all_gather(rows, "gathering the features");
  };
  return sharding;
}

std::unique_ptr<FeatureNetwork> load_eval_network(const Args& args, const EvalOptions& o, const torch::Device& device) {
  auto network = o.torchscript ? load_feature_network(o.features_spec, o.input, device)
                               : load_classifier_features(o.features_spec, !args.has("--no-ema"), device);
  spdlog::info("feature network {} ({})", o.features_spec, network->identity());
  if (o.metrics.class_accuracy && network->num_classes() == 0)
    throw UsageError("--classes needs a feature network with classes (a diffuse classifier checkpoint), not " +
                     o.features_spec);
  return network;
}

// The reference's features: read from a stats file, or extracted from its images.
FeatureSet reference_features(const Args& args, const EvalOptions& o, FeatureNetwork& network,
                              const FeatureSharding& sharding) {
  if (!is_feature_stats_file(o.ref_spec))
    return extract_features(network, o.ref_spec, o.ref_limit, o.batch,
                            decile_progress("reference " + o.ref_spec, "images"), sharding);
  if (args.has("--ref-limit")) throw UsageError("--ref-limit applies to images, and " + o.ref_spec + " is a stats file");
  FeatureSet reference = load_feature_stats(o.ref_spec);
  spdlog::info("reference: {} ({} images, from {})", o.ref_spec, reference.features.size(0), reference.source);
  return reference;
}

void save_reference_stats(const std::string& path, const FeatureSet& reference) {
  save_feature_stats(path, reference);
  spdlog::info("wrote the stats of {} ({} images) to {}", reference.source, reference.features.size(0), path);
}

void log_eval_metrics(const EvalMetrics& m) {
  spdlog::info("FD {:.3f} | KID {:.5f} ± {:.5f} | precision {:.3f} | recall {:.3f}{} ({} samples vs {} references)",
               m.fd, m.kid.mean, m.kid.std, m.pr.precision, m.pr.recall,
               m.class_accuracy ? fmt::format(" | class accuracy {:.3f}", *m.class_accuracy) : std::string(),
               m.samples, m.references);
}

nlohmann::json eval_json(const EvalOptions& o, const std::string& samples_spec, const FeatureSet& reference,
                         const FeatureSet& samples, const FeatureNetwork& network, const EvalMetrics& m,
                         const torch::Device& device, double seconds) {
  return {
      {"samples", {{"source", samples_spec}, {"count", m.samples}}},
      {"reference", {{"source", reference.source}, {"count", m.references}}},
      {"features", {{"network", network.identity()}, {"spec", o.features_spec}, {"dim", samples.features.size(1)}}},
      {"fd", m.fd},
      {"kid", {{"mean", m.kid.mean}, {"std", m.kid.std}, {"subsets", m.kid.subsets}, {"subset_size", m.kid.subset_size}}},
      {"precision", m.pr.precision},
      {"recall", m.pr.recall},
      {"k", o.metrics.pr_neighbours},
      {"class_accuracy", m.class_accuracy ? nlohmann::json(*m.class_accuracy) : nlohmann::json()},
      {"device", device.str()},
      {"seconds", std::round(seconds * 1000) / 1000},
  };
}

// To --out when given, else to stdout.
void write_eval_json(const Args& args, const nlohmann::json& json) {
  const std::string text = json.dump(2) + "\n";
  if (args.has("--out")) {
    write_text_file_atomic(args.get("--out"), text);
    spdlog::info("wrote {}", args.get("--out"));
  } else {
    std::cout << text;
  }
}

}  // namespace

int run_eval(const std::vector<std::string>& argv) {
  Args args("eval",
            "Compare generated images with reference images under a feature network: Fréchet distance\n"
            "(FD), KID, precision/recall (k-NN manifolds) and, with --classes, the share of samples the\n"
            "network assigns their intended class. Image sources: fashion:train | fashion:test,\n"
            "TYPE:PATH[:SPLIT] (TYPE idx, cifar10, image_folder), a folder of images (diffuse sample's\n"
            "output; labels from the _classK names) or a .pt tensor file. --ref also takes a stats file\n"
            "written by --save-stats. On several ranks each runs its share of the network's batches\n"
            "and rank 0 reports the figures one process would.",
            eval_flags());
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  if (const auto code = launch_local_workers_if_asked(args, "eval", argv)) return *code;
  apply_thread_flag(args);
  const EvalOptions o = read_eval_options(args);

  const auto requested_device = resolve_device(args.get("--device", "auto"), "--device");
  const auto communicator = join_ranks(args, requested_device);
  const auto device = rank_device(requested_device, communicator->env());
  const FeatureSharding sharding = feature_sharding(*communicator);
  const auto start = std::chrono::steady_clock::now();
  const auto network = load_eval_network(args, o, device);

  const FeatureSet reference = reference_features(args, o, *network, sharding);
  if (args.has("--save-stats") && communicator->is_root()) save_reference_stats(args.get("--save-stats"), reference);
  if (!args.has("--samples")) return 0;
  // A stats file of another network is refused before the samples are run through this one.
  if (reference.network != network->identity())
    throw DataError(o.ref_spec + " holds features of network '" + reference.network + "', but --features " +
                    o.features_spec + " is '" + network->identity() +
                    "'; compute the reference again with this --features");
  const std::string samples_spec = args.get("--samples");
  const FeatureSet samples = extract_features(*network, samples_spec, o.limit, o.batch,
                                              decile_progress("samples " + samples_spec, "images"), sharding);
  if (!communicator->is_root()) return 0;
  const EvalMetrics m = compute_eval_metrics(reference, samples, o.metrics);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  log_eval_metrics(m);
  write_eval_json(args, eval_json(o, samples_spec, reference, samples, *network, m, device, seconds));
  return 0;
}

}  // namespace diffuse::cli
