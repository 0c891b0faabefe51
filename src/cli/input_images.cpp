#include "input_images.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>

#include "diffuse/core/error.h"
#include "diffuse/data/data_loader.h"
#include "diffuse/data/dataset_slice.h"
#include "diffuse/io/image_io.h"

namespace diffuse::cli {
namespace fs = std::filesystem;
namespace {

std::string shape_text(int64_t c, int64_t h, int64_t w) {
  return std::to_string(c) + "×" + std::to_string(h) + "×" + std::to_string(w);
}

bool is_image_file(const fs::path& path) {
  static const std::vector<std::string> kExtensions{".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"};
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return std::tolower(ch); });
  return std::find(kExtensions.begin(), kExtensions.end(), ext) != kExtensions.end();
}

}  // namespace

torch::Tensor conform(torch::Tensor image, const std::string& source, const std::vector<int64_t>& shape,
                      bool resize, const char* what) {
  const int64_t c = shape[0], h = shape[1], w = shape[2];
  if (image.size(0) == c && image.size(1) == h && image.size(2) == w) return image;
  if (!resize)
    throw DataError(source + ": " + what + " must be " + shape_text(c, h, w) +
                    " (channels×height×width), found " +
                    shape_text(image.size(0), image.size(1), image.size(2)) + "; pass --resize to convert it");
  if (image.size(0) != c) {
    if (c == 1)
      image = rgb_to_grey(image);
    else
      image = image.expand({c, image.size(1), image.size(2)}).contiguous();
  }
  if (image.size(1) != h || image.size(2) != w) {
    namespace F = torch::nn::functional;
    const bool shrink = image.size(1) >= h && image.size(2) >= w;
    auto options = F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w});
    options = shrink ? options.mode(torch::kArea) : options.mode(torch::kBilinear).align_corners(false);
    image = F::interpolate(image.unsqueeze(0), options).squeeze(0);
  }
  return image;
}

torch::Tensor read_conformed(const std::string& path, const std::vector<int64_t>& shape, bool resize,
                             const char* what) {
  return conform(read_image(path, resize ? shape[0] : 0), path, shape, resize, what);
}

Inputs load_inputs(const std::string& input, const std::vector<int64_t>& shape, bool resize) {
  Inputs in;
  std::vector<torch::Tensor> images;
  if (looks_like_dataset_slice(input)) {
    const DatasetSlice slice = parse_dataset_slice(input);
    const Batch batch = load_dataset_slice(slice);
    const std::string prefix = input.substr(0, input.find(':')) + "_" + slice.data.split + "_";
    for (int64_t k = 0; k < batch.images.size(0); ++k) {
      const int64_t index = slice.begin + k;
      images.push_back(conform(batch.images[k], input + " item " + std::to_string(index), shape, resize, "the image"));
      in.names.push_back(prefix + std::to_string(index));
    }
  } else if (fs::is_directory(input)) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(input))
      if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    if (files.empty())
      throw DataError(input + ": --input folder holds no image files (.png, .jpg, .bmp, .pgm, .ppm, ...)");
    std::map<std::string, int> seen;
    for (const auto& file : files) {
      images.push_back(read_conformed(file.string(), shape, resize, "the image"));
      std::string stem = file.stem().string();
      // Two files with one stem (a.png, a.jpg) must not overwrite each other's outputs.
      if (seen[stem]++ > 0) stem += "_" + file.extension().string().substr(1);
      in.names.push_back(stem);
    }
  } else if (fs::is_regular_file(input)) {
    images.push_back(read_conformed(input, shape, resize, "the image"));
    in.names.push_back(fs::path(input).stem().string());
  } else {
    throw DataError("--input '" + input +
                    "' is neither an image file, a folder of images, nor a dataset slice such as "
                    "fashion:test[0:64]");
  }
  in.images = torch::stack(images).to(torch::kFloat32);
  return in;
}

}  // namespace diffuse::cli
