#include "train/graphed_train_step.h"

#include "diffuse/core/error.h"

namespace diffuse {

GraphedTrainStep::GraphedTrainStep(Body body, const torch::Device& device, bool fused_optimizer)
    : body_(std::move(body)), graph_(device, "train.cuda_graph") {
  if (!fused_optimizer)
    throw ConfigError("train.cuda_graph: the captured step needs train.fused_adamw: true (the "
                      "per-tensor AdamW computes its bias correction on the host)");
}

torch::Tensor GraphedTrainStep::run(const torch::Tensor& x0, const TrainingDraw& draw) {
  if (graph_.captured()) {
    copy_graph_input(x0_, x0, "train.cuda_graph: the batch of images");
    copy_graph_input(draw_.sigma, draw.sigma, "train.cuda_graph: the noise levels");
    copy_graph_input(draw_.timesteps, draw.timesteps, "train.cuda_graph: the timesteps");
    copy_graph_input(draw_.labels, draw.labels, "train.cuda_graph: the labels");
    copy_graph_input(draw_.noise, draw.noise, "train.cuda_graph: the noise");
  } else {
    auto clone = [](const torch::Tensor& t) { return t.defined() ? t.clone() : t; };
    x0_ = clone(x0);
    draw_ = {clone(draw.sigma), clone(draw.timesteps), clone(draw.labels), clone(draw.noise)};
    graph_.capture([this] { loss_ = body_(x0_, draw_); });
  }
  graph_.replay();
  return loss_;
}

}  // namespace diffuse
