#include "diffuse/train/checkpoint.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <sstream>

#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/models/registry.h"

namespace diffuse {
namespace {

constexpr const char* kFormat = "diffuse-checkpoint-1";

std::string shape_text(const torch::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

// Parameters and buffers by dotted name, as one dictionary (readable with shape checks).
c10::Dict<std::string, torch::Tensor> module_state(const torch::nn::Module& module) {
  c10::Dict<std::string, torch::Tensor> state;
  for (const auto& p : module.named_parameters(true)) state.insert(p.key(), p.value().detach().cpu());
  for (const auto& b : module.named_buffers(true)) state.insert(b.key(), b.value().detach().cpu());
  return state;
}

std::string join_lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += s + "\n";
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointMeta& meta,
                      const torch::nn::Module& model, const torch::nn::Module* ema,
                      torch::optim::Optimizer* optimizer) {
  namespace fs = std::filesystem;
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kFormat)));
  archive.write("config", c10::IValue(meta.config_yaml));
  archive.write("class_names", c10::IValue(join_lines(meta.class_names)));
  archive.write("step", c10::IValue(meta.step));
  archive.write("loader_epoch", c10::IValue(meta.loader_epoch));
  archive.write("loader_position", c10::IValue(meta.loader_position));
  if (meta.rng_state.defined()) archive.write("rng_state", meta.rng_state, /*is_buffer=*/true);
  if (meta.default_rng_state.defined())
    archive.write("default_rng_state", meta.default_rng_state, /*is_buffer=*/true);
  if (meta.loss_window.defined() && meta.loss_window_steps > 0) {
    archive.write("loss_window", meta.loss_window, /*is_buffer=*/true);
    archive.write("loss_window_steps", c10::IValue(meta.loss_window_steps));
  }
  archive.write("model", c10::IValue(module_state(model)));
  if (ema) archive.write("ema", c10::IValue(module_state(*ema)));
  if (optimizer) {
    torch::serialize::OutputArchive opt;
    optimizer->save(opt);
    archive.write("optimizer", opt);
  }
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const std::string tmp = path + ".tmp";
  try {
    archive.save_to(tmp);
  } catch (const c10::Error& e) {
    fs::remove(tmp);
    throw CheckpointError(path + ": cannot write checkpoint: " + e.what_without_backtrace());
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) throw CheckpointError(path + ": cannot rename the temp checkpoint into place: " + ec.message());
}

CheckpointReader::CheckpointReader(const std::string& path) : path_(path) {
  if (!std::filesystem::exists(path)) throw CheckpointError(path + ": checkpoint file not found");
  try {
    archive_.load_from(path);
  } catch (const c10::Error& e) {
    throw CheckpointError(path + ": not a readable checkpoint (truncated or not written by diffuse): " +
                          split_lines(e.what_without_backtrace()).front());
  }
  c10::IValue value;
  if (!archive_.try_read("format", value) || !value.isString() || value.toStringRef() != kFormat)
    throw CheckpointError(path + ": not a diffuse checkpoint (no '" + std::string(kFormat) +
                          "' format tag; was it written by another tool?)");
  auto read_string = [&](const char* key) {
    c10::IValue v;
    if (!archive_.try_read(key, v) || !v.isString())
      throw CheckpointError(path_ + ": checkpoint lacks '" + key + "'");
    return v.toStringRef();
  };
  auto read_int = [&](const char* key) {
    c10::IValue v;
    if (!archive_.try_read(key, v) || !v.isInt())
      throw CheckpointError(path_ + ": checkpoint lacks '" + key + "'");
    return v.toInt();
  };
  meta_.config_yaml = read_string("config");
  meta_.class_names = split_lines(read_string("class_names"));
  meta_.step = read_int("step");
  meta_.loader_epoch = read_int("loader_epoch");
  meta_.loader_position = read_int("loader_position");
  archive_.try_read("rng_state", meta_.rng_state, /*is_buffer=*/true);
  archive_.try_read("default_rng_state", meta_.default_rng_state, /*is_buffer=*/true);
  c10::IValue window_steps;
  if (archive_.try_read("loss_window_steps", window_steps) && window_steps.isInt() &&
      archive_.try_read("loss_window", meta_.loss_window, /*is_buffer=*/true))
    meta_.loss_window_steps = window_steps.toInt();
  c10::IValue ema;
  has_ema_ = archive_.try_read("ema", ema);
}

void CheckpointReader::load_module(const std::string& section, torch::nn::Module& module) {
  c10::IValue value;
  if (!archive_.try_read(section, value) || !value.isGenericDict())
    throw CheckpointError(path_ + ": checkpoint has no '" + section + "' weights");
  const auto dict = value.toGenericDict();
  torch::NoGradGuard no_grad;
  auto copy = [&](const std::string& name, torch::Tensor& target) {
    const auto it = dict.find(name);
    if (it == dict.end())
      throw CheckpointError(path_ + ": " + section + " weights lack '" + name + "' (shape " +
                            shape_text(target) + "): the checkpoint was trained with a different "
                            "architecture");
    const auto source = it->value().toTensor();
    if (source.sizes() != target.sizes())
      throw CheckpointError(path_ + ": " + section + " weight '" + name + "' has shape " +
                            shape_text(source) + " in the checkpoint but " + shape_text(target) +
                            " in the model: the architecture differs");
    target.copy_(source);
  };
  size_t expected = 0;
  for (auto& p : module.named_parameters(true)) {
    copy(p.key(), p.value());
    ++expected;
  }
  for (auto& b : module.named_buffers(true)) {
    copy(b.key(), b.value());
    ++expected;
  }
  if (dict.size() != expected) {
    const auto params = module.named_parameters(true);
    const auto buffers = module.named_buffers(true);
    for (const auto& entry : dict) {
      const std::string key = entry.key().toStringRef();
      if (!params.contains(key) && !buffers.contains(key))
        throw CheckpointError(path_ + ": " + section + " weight '" + key +
                              "' in the checkpoint has no place in the model: the architecture differs");
    }
  }
}

void CheckpointReader::load_optimizer(torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive opt;
  if (!archive_.try_read("optimizer", opt))
    throw CheckpointError(path_ + ": checkpoint has no optimizer state, so training cannot resume from it");
  try {
    optimizer.load(opt);
  } catch (const c10::Error& e) {
    throw CheckpointError(path_ + ": optimizer state does not fit this model: " +
                          split_lines(e.what_without_backtrace()).front());
  }
}

torch::Device resolve_device(const std::string& text, const std::string& what) {
  if (text == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(text);
  } catch (const c10::Error&) {
    throw ConfigError(what + ": unknown device '" + text + "'; expected auto, cpu, cuda or cuda:N");
  }
  if (device.is_cuda()) {
    if (!torch::cuda::is_available())
      throw ConfigError(what + ": device '" + text + "' asked for, but this build or machine has no CUDA");
    const int64_t index = device.has_index() ? device.index() : 0;
    if (index >= static_cast<int64_t>(torch::cuda::device_count()))
      throw ConfigError(what + ": device '" + text + "' does not exist (" +
                        std::to_string(torch::cuda::device_count()) + " CUDA devices)");
    if (!device.has_index()) device = torch::Device(torch::kCUDA, 0);
  } else if (!device.is_cpu()) {
    throw ConfigError(what + ": unsupported device '" + text + "'; expected auto, cpu, cuda or cuda:N");
  }
  return device;
}

LoadedModel load_model_for_inference(const std::string& path, bool use_ema, torch::Device device) {
  CheckpointReader reader(path);
  LoadedModel loaded;
  ConfigNode root = ConfigNode::load_string(reader.meta().config_yaml, path + " (embedded config)");
  loaded.config = parse_experiment_config(root);
  loaded.step = reader.meta().step;
  loaded.class_names = reader.meta().class_names;
  loaded.has_ema = reader.has_ema();
  auto net = make_model(loaded.config.model);
  loaded.using_ema = use_ema && loaded.has_ema;
  if (use_ema && !loaded.has_ema) spdlog::warn("{}: no EMA weights in this checkpoint; using the raw weights", path);
  reader.load_module(loaded.using_ema ? "ema" : "model", *net);
  loaded.precond = Precond(net, loaded.config.diffusion.prediction,
                           NoiseSchedule::from_options(loaded.config.diffusion));
  loaded.precond->to(device);
  loaded.precond->eval();
  return loaded;
}

}  // namespace diffuse
