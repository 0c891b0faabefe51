// `diffuse encode`: images to the latents of a VAE file, as a latents dataset for
// data.type: latents (models/autoencoder_kl.h).
#include <spdlog/spdlog.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "args.h"
#include "diffuse/core/device.h"
#include "diffuse/core/error.h"
#include "diffuse/data/dataset.h"
#include "diffuse/data/dataset_slice.h"
#include "diffuse/interop/weight_import.h"
#include "diffuse/io/safetensors.h"
#include "diffuse/models/autoencoder_kl.h"

namespace diffuse::cli {
namespace {

struct LabelledImages {
  torch::Tensor images;  // [N, C, H, W] in [-1, 1]
  torch::Tensor labels;  // [N] int64
  std::vector<std::string> class_names;
};

// A dataset slice (fashion:test[0:64]) or an image folder (path/<class>/*.png, the labels
// from the sub-folders), with `channels` channels and, for folders, side `resolution`.
LabelledImages read_labelled_images(const std::string& input, int channels, int resolution) {
  LabelledImages out;
  if (looks_like_dataset_slice(input)) {
    const Batch batch = load_dataset_slice(parse_dataset_slice(input));
    out.images = batch.images;
    out.labels = batch.labels;
    const int64_t classes = out.labels.numel() > 0 ? out.labels.max().item<int64_t>() + 1 : 0;
    for (int64_t k = 0; k < classes; ++k) out.class_names.push_back(std::to_string(k));
  } else {
    if (!std::filesystem::is_directory(input))
      throw DataError("--input '" + input + "': expected an image folder (path/<class>/*.png) or a dataset slice "
                      "(fashion:test[0:64])");
    DataOptions data;
    data.type = DatasetType::image_folder;
    data.path = input;
    data.channels = channels;
    data.resolution = resolution;
    data.num_workers = 0;
    const auto dataset = make_dataset(data);
    std::vector<torch::Tensor> images;
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < dataset->info().size; ++i) {
      const Example e = dataset->get(i);
      images.push_back(e.image);
      labels.push_back(e.label);
    }
    out.images = torch::stack(images);
    out.labels = torch::tensor(labels, torch::kInt64);
    out.class_names = dataset->info().class_names;
  }
  // Grey images for a colour VAE: the grey value in every channel.
  if (out.images.size(1) == 1 && channels == 3) out.images = out.images.expand({-1, 3, -1, -1}).contiguous();
  return out;
}

}  // namespace

int run_encode(const std::vector<std::string>& argv) {
  Args args("encode",
            "Encode images with a VAE file (diffuse import --from diffusers-vae) into a latents file for\n"
            "data.type: latents: OUT holds 'latents' (the posterior mean × the VAE's scaling factor) and\n"
            "'labels' (from the class sub-folders of an image folder, or the dataset's), with the class\n"
            "names in its __metadata__.",
            {
                {"--vae", "FILE", "the VAE file"},
                {"--input", "DIR", "an image folder (DIR/<class>/*.png) or a dataset slice (fashion:test[0:64])"},
                {"--out", "FILE", "the latents file to write; its name must end in .safetensors"},
                {"--resolution", "R", "image folders: resize the shorter side to R and centre-crop (default: as stored)"},
                {"--batch-size", "B", "images per VAE batch, 1-65536 (default 16)"},
            });
  if (!args.parse(argv)) return 0;
  apply_common_flags(args);
  const std::string out = require_safetensors_path(args, "--out");
  const std::string input = args.require("--input");
  const int64_t batch_size = args.get_int("--batch-size", 16, 1, 65536);
  const int resolution = static_cast<int>(args.get_int("--resolution", 0, 1, 16384));
  const auto device = resolve_device(args.get("--device", "auto"), "--device");
  AutoencoderKL vae = load_vae(args.require("--vae"), device);
  const LabelledImages data = read_labelled_images(input, vae->options().in_channels, resolution);
  const torch::Tensor latents = encode_images(vae, data.images, batch_size, device);
  SafetensorsContents file;
  file.tensors = {{"latents", latents}, {"labels", data.labels}};
  file.metadata = {{"class_names", nlohmann::json(data.class_names).dump()}, {"vae", args.get("--vae")}};
  write_safetensors(out, file);
  spdlog::info("wrote {}: {} latents of {}×{}×{}, {} classes; train on them with data: {{type: latents, path: {}}}", out,
               latents.size(0), latents.size(1), latents.size(2), latents.size(3), data.class_names.size(), out);
  return 0;
}

}  // namespace diffuse::cli
