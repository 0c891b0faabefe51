#pragma once
// The typed form of an experiment YAML (configs/*.yaml): it aggregates the option structs
// that each area owns (data/, models/, schedule/, train/, distill/), whose schemas read,
// emit, validate and document them. Parsed once, strictly, by parse_experiment_config; the
// rest of diffuse sees only these structs. parse → emit → parse is the identity.
#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "diffuse/core/option_schema.h"
#include "diffuse/data/data_options.h"
#include "diffuse/distill/distill_options.h"
#include "diffuse/models/classifier_options.h"
#include "diffuse/models/model_options.h"
#include "diffuse/schedule/diffusion_options.h"
#include "diffuse/train/train_options.h"

namespace diffuse {

struct ExperimentConfig {
  std::string name = "run";
  std::string run_dir = "runs/run";  // config.yaml, metrics.jsonl, samples/, ckpt/
  DataOptions data;
  ModelOptions model;
  DiffusionOptions diffusion;
  ClassifierOptions classifier;  // read and written only for model.arch: classifier
  TrainOptions train;
  DistillOptions distill;  // written only when a method is set
};

const OptionSchema<ExperimentConfig>& experiment_config_schema();

// Reads and validates the whole config from `root`.
ExperimentConfig parse_experiment_config(ConfigNode& root);
// Loads `path`, applies `overrides` ("a.b=value"), parses.
ExperimentConfig load_experiment_config(const std::string& path,
                                        const std::vector<std::string>& overrides = {});
YAML::Node emit_experiment_config(const ExperimentConfig& config);

}  // namespace diffuse
