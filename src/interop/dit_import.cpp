// DiT weights (Peebles & Xie 2023) from the DiT repository and from diffusers onto our DiT,
// which follows the repository's models.py layer for layer.
#include <cmath>
#include <map>
#include <utility>

#include "diffuse/core/shape_text.h"
#include "diffuse/models/registry.h"
#include "import_support.h"

namespace diffuse::interop {
namespace {

// github.com/facebookresearch/DiT, models.py: adaLN-Zero, LayerNorm ε 1e-6, tanh GELU,
// [cos | sin] timestep features, fixed 2-D sin-cos positions, the same unpatchify order;
// only names differ.
std::string dit_official_name(const std::string& ours) {
  std::string name = ours;
  replace_prefix(name, "x_embedder.", "x_embedder.proj.");
  replace_first(name, "y_embedder.weight", "y_embedder.embedding_table.weight");
  if (starts_with(name, "blocks.")) {
    replace_first(name, ".mlp.0.", ".mlp.fc1.");
    replace_first(name, ".mlp.2.", ".mlp.fc2.");
  }
  replace_first(name, "adaln_modulation", "adaLN_modulation");
  return name;
}

// The heads of the paper's models by width (Table 1: S 384/6, B 768/12, L 1024/16, XL
// 1152/16); the shapes do not give them.
int paper_heads(int hidden_size) {
  static const std::map<int, int> heads{{384, 6}, {768, 12}, {1024, 16}, {1152, 16}};
  const auto it = heads.find(hidden_size);
  return it != heads.end() ? it->second : std::max(1, hidden_size / 64);
}

std::string dit_description(const ExperimentConfig& c) {
  const auto& m = c.model;
  return "DiT depth " + std::to_string(m.dit.depth) + ", hidden " + std::to_string(m.dit.hidden_size) + ", " +
         std::to_string(m.dit.num_heads) + " heads, patch " + std::to_string(m.dit.patch_size) + ", " +
         std::to_string(m.in_channels) + "×" + std::to_string(m.image_size) + "×" + std::to_string(m.image_size) +
         " inputs, " + std::to_string(m.num_classes) + " classes" + (m.learn_sigma ? ", learned variance" : "");
}

// The DiT both sources share: a latent model over the pipeline's schedule; the label table
// has a null row when the model was trained with label dropout (always, in the paper).
ExperimentConfig latent_dit_config(const ImportInput& input, const torch::Tensor& patch, const torch::Tensor& output,
                                   int64_t label_rows) {
  ExperimentConfig c;
  auto& m = c.model;
  m.arch = ModelArch::dit;
  m.dit.hidden_size = static_cast<int>(patch.size(0));
  m.in_channels = static_cast<int>(patch.size(1));
  m.dit.patch_size = static_cast<int>(patch.size(2));
  const int64_t per_patch = int64_t{m.dit.patch_size} * m.dit.patch_size;
  m.learn_sigma = output.size(0) == 2 * per_patch * m.in_channels;
  if (!m.learn_sigma && output.size(0) != per_patch * m.in_channels)
    throw CheckpointError(input.weights_path + ": the output layer has " + std::to_string(output.size(0)) +
                          " rows, neither patch² × in_channels (" + std::to_string(per_patch * m.in_channels) +
                          ") nor twice that (learned variance)");
  m.num_classes = label_rows > 0 ? static_cast<int>(label_rows) - 1 : 0;
  c.diffusion = pipeline_diffusion(input);
  c.diffusion.p_uncond = m.num_classes > 0 ? 0.1 : 0.0;
  c.data.type = DatasetType::latents;
  return c;
}

void require_diffusers_dit_settings(const ImportInput& input) {
  require_config(input, "sample_size and the number of attention heads");
  require_config_setting(input, "norm_type", "ada_norm_zero");
  require_config_setting(input, "activation_fn", "gelu-approximate");
  require_config_setting(input, "attention_bias", true);
  require_config_setting(input, "norm_elementwise_affine", false);
  require_config_setting(input, "cross_attention_dim", nullptr);
}

// The rows of block 0's label table (0 without one), which must hold the null label.
int64_t diffusers_label_rows(const ImportInput& input, const std::string& emb) {
  const auto table = input.weights.find(emb + "class_embedder.embedding_table.weight");
  const int64_t label_rows = table == input.weights.end() ? 0 : table->second.size(0);
  const int classes = config_value(input, "num_embeds_ada_norm", 0);
  if (label_rows > 0 && label_rows != classes + 1)
    throw CheckpointError(input.weights_path + ": the label table has " + std::to_string(label_rows) +
                          " rows for num_embeds_ada_norm " + std::to_string(classes) + " of " + input.config_path +
                          "; diffuse needs one null row for the unconditional label (class_dropout_prob > 0)");
  return label_rows;
}

// What config.json and the feed-forward width `ff` give beyond latent_dit_config.
void read_diffusers_dit_options(const ImportInput& input, const torch::Tensor& ff, ModelOptions& m) {
  const int sample_size = config_value(input, "sample_size", 0);
  if (sample_size < 1) throw CheckpointError(input.config_path + ": no sample_size (the latent side length)");
  m.image_size = sample_size;
  m.dit.num_heads = config_value(input, "num_attention_heads", 16);
  if (m.dit.num_heads * config_value(input, "attention_head_dim", 72) != m.dit.hidden_size)
    throw CheckpointError(input.config_path + ": num_attention_heads × attention_head_dim is not the width " +
                          std::to_string(m.dit.hidden_size) + " of pos_embed.proj.weight");
  m.dit.mlp_ratio = static_cast<double>(ff.size(0)) / m.dit.hidden_size;
  m.dit.depth = count_prefixed(input.weights, "transformer_blocks.", ".attn1.to_q.weight");
  m.dit.mlp_norm_eps = config_value(input, "norm_eps", 1e-5);
  m.timestep.freq_shift = 1;
  m.timestep.order = TimestepOrder::cos_sin;
}

// Erases blocks 1..depth-1's embedder copies from `weights` after checking each equals
// block 0's (`emb`).
void drop_embedder_copies(StateDict& weights, const ImportInput& input, const std::string& emb, int depth) {
  for (int block = 1; block < depth; ++block) {
    const std::string copy = "transformer_blocks." + std::to_string(block) + ".norm1.emb.";
    for (auto it = weights.begin(); it != weights.end();) {
      if (!starts_with(it->first, copy)) {
        ++it;
        continue;
      }
      const std::string first = emb + it->first.substr(copy.size());
      const auto reference = weights.find(first);
      if (reference == weights.end() || reference->second.sizes() != it->second.sizes() ||
          !torch::equal(reference->second, it->second))
        throw CheckpointError(input.weights_path + ": '" + it->first + "' differs from block 0's '" + first +
                              "': diffuse's DiT (as the DiT repository's) has one timestep and label embedder, "
                              "diffusers one per block; converted DiT checkpoints hold equal copies");
      it = weights.erase(it);
    }
  }
}

// Our name → diffusers', whose embedders are block 0's (`emb`).
std::string diffusers_dit_name(const std::string& ours, const std::string& emb) {
  const std::pair<std::string, std::string> prefixes[] = {
      {"x_embedder.", "pos_embed.proj."},
      {"t_embedder.mlp.0.", emb + "timestep_embedder.linear_1."},
      {"t_embedder.mlp.2.", emb + "timestep_embedder.linear_2."},
      {"y_embedder.weight", emb + "class_embedder.embedding_table.weight"},
      {"final_layer.adaln_modulation.1.", "proj_out_1."},
      {"final_layer.linear.", "proj_out_2."},
      {"blocks.", "transformer_blocks."},
  };
  std::string name = ours;
  for (const auto& [from, to] : prefixes)
    if (replace_prefix(name, from, to)) break;
  if (starts_with(ours, "blocks.")) {
    replace_first(name, ".attn.qkv.", ".attn1.to_qkv.");
    replace_first(name, ".attn.proj.", ".attn1.to_out.0.");
    replace_first(name, ".mlp.0.", ".ff.net.0.proj.");
    replace_first(name, ".mlp.2.", ".ff.net.2.");
    replace_first(name, ".adaln_modulation.1.", ".norm1.linear.");
  }
  return name;
}

}  // namespace

ImportSummary import_dit_official(const ImportInput& input, const ImportOptions& options) {
  const auto& patch = require_tensor(input, "x_embedder.proj.weight", 4);  // [D, C, p, p]
  const auto& positions = require_tensor(input, "pos_embed", 3);          // [1, N, D]
  const auto& linear = require_tensor(input, "final_layer.linear.weight", 2);
  const auto& fc1 = require_tensor(input, "blocks.0.mlp.fc1.weight", 2);
  const auto table = input.weights.find("y_embedder.embedding_table.weight");
  ExperimentConfig c = latent_dit_config(input, patch, linear, table == input.weights.end() ? 0 : table->second.size(0));
  auto& m = c.model;
  const auto grid = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(positions.size(1)))));
  if (grid * grid != positions.size(1))
    throw CheckpointError(input.weights_path + ": pos_embed has " + std::to_string(positions.size(1)) +
                          " tokens, not a square grid");
  m.image_size = static_cast<int>(grid) * m.dit.patch_size;
  m.dit.num_heads = options.num_heads > 0 ? options.num_heads : paper_heads(m.dit.hidden_size);
  m.dit.mlp_ratio = static_cast<double>(fc1.size(0)) / m.dit.hidden_size;
  m.dit.depth = count_prefixed(input.weights, "blocks.", ".attn.qkv.weight");
  const auto net = make_model(m);
  copy_mapped(*net, input.weights, input, dit_official_name);
  return write_imported_model(options.out, *net, c, dit_description(c));
}

// diffusers' DiTTransformer2DModel (and the Transformer2DModel of facebook/DiT-XL-2-256)
// computes the same network as the DiT repository with three differences that are options
// of ours: its timestep features use frequencies 10000^(-i/(h-1)) (Timesteps with
// downscale_freq_shift 1), the LayerNorm before each MLP has ε norm_eps (1e-5), and every
// block carries its own copy of the timestep and label embedders, of which the output layer
// uses block 0's. q, k and v are separate Linear layers, and the positions are computed,
// not stored.
ImportSummary import_diffusers_dit(const ImportInput& input, const ImportOptions& options) {
  require_diffusers_dit_settings(input);
  const std::string emb = "transformer_blocks.0.norm1.emb.";
  const auto& patch = require_tensor(input, "pos_embed.proj.weight", 4);  // [D, C, p, p]
  const auto& output = require_tensor(input, "proj_out_2.weight", 2);
  const auto& ff = require_tensor(input, "transformer_blocks.0.ff.net.0.proj.weight", 2);
  ExperimentConfig c = latent_dit_config(input, patch, output, diffusers_label_rows(input, emb));
  auto& m = c.model;
  read_diffusers_dit_options(input, ff, m);

  // One embedder for all blocks: the copies must be equal, and only block 0's is mapped.
  StateDict weights = with_fused_qkv(input.weights, input, /*conv=*/false);
  drop_embedder_copies(weights, input, emb, m.dit.depth);
  const auto net = make_model(m);
  for (const auto& buffer : net->named_buffers(true))
    if (buffer.key() == "pos_embed" && !weights.count("pos_embed")) weights["pos_embed"] = buffer.value().clone();
  copy_mapped(*net, weights, input, [&](const std::string& ours) { return diffusers_dit_name(ours, emb); });
  return write_imported_model(options.out, *net, c, dit_description(c));
}

}  // namespace diffuse::interop
