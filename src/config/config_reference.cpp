#include "diffuse/config/config_reference.h"

#include "diffuse/config/experiment_config.h"
#include "diffuse/core/error.h"
#include "diffuse/distill/score_distillation.h"
#include "diffuse/inverse/restore_task.h"

namespace diffuse {

std::string config_reference_markdown() {
  return "Experiment configs (`diffuse train --config`):\n\n" +
         option_reference_markdown(experiment_config_schema().reference(ExperimentConfig{}, "")) +
         "\nRestore tasks (`diffuse restore --task`):\n\n" +
         option_reference_markdown(restore_task_schema().reference(RestoreTask{}, "")) +
         "\nScore-distillation tasks (`diffuse distill --config`):\n\n" +
         option_reference_markdown(
             score_distillation_schema().reference(ScoreDistillationOptions{}, ""));
}

std::string with_config_reference(const std::string& readme, const std::string& source) {
  const size_t begin = readme.find(kConfigReferenceBegin);
  const size_t end = readme.find(kConfigReferenceEnd);
  if (begin == std::string::npos || end == std::string::npos || end < begin)
    throw ConfigError(source + ": expected the markers '" + kConfigReferenceBegin + "' and '" +
                      kConfigReferenceEnd + "' around the config reference, in that order");
  const size_t body = begin + std::string(kConfigReferenceBegin).size();
  return readme.substr(0, body) + "\n" + config_reference_markdown() + readme.substr(end);
}

}  // namespace diffuse
