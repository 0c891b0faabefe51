#include "diffuse/data/image_folder_dataset.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include "diffuse/core/error.h"
#include "diffuse/io/image_io.h"

#if DIFFUSE_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace diffuse {

namespace {

namespace fs = std::filesystem;

bool is_image_file(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::vector<std::string> sorted_images_in(const fs::path& folder) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

#if DIFFUSE_WITH_OPENCV

// Decodes `file` to RGB or grey uint8 of `channels` (0: the file's own) scaled so that the
// shorter side is `resolution` and centre-cropped; returns an empty Mat and says why in
// `unreadable` when the file is not a readable image.
cv::Mat decode(const std::string& file, int channels, int resolution, bool allow_upscale,
               std::string& unreadable) {
  const int flags = channels == 1 ? cv::IMREAD_GRAYSCALE
                  : channels == 3 ? cv::IMREAD_COLOR
                                  : cv::IMREAD_ANYCOLOR;
  cv::Mat image;
  try {
    const std::string bytes = read_checked_image_bytes(file);
    image = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data())), flags);
  } catch (const DataError& e) {
    unreadable = e.what();
    return {};
  } catch (const cv::Exception& e) {
    unreadable = file + ": cannot decode the image: " + e.err;
    return {};
  }
  if (image.empty()) {
    unreadable = file + ": cannot decode the image (corrupt or not an image)";
    return image;
  }
  if (image.channels() == 4) cv::cvtColor(image, image, cv::COLOR_BGRA2BGR);
  if (image.channels() == 3) cv::cvtColor(image, image, cv::COLOR_BGR2RGB);
  if (resolution <= 0) return image;
  const int shorter = std::min(image.rows, image.cols);
  if (shorter < resolution && !allow_upscale)
    throw DataError(file + ": image is " + std::to_string(image.cols) + "x" +
                    std::to_string(image.rows) + " (WxH), smaller than data.resolution " +
                    std::to_string(resolution) + "; set data.allow_upscale: true to enlarge it");
  const double scale = static_cast<double>(resolution) / shorter;
  const int width = std::max(resolution, static_cast<int>(std::lround(image.cols * scale)));
  const int height = std::max(resolution, static_cast<int>(std::lround(image.rows * scale)));
  if (width != image.cols || height != image.rows) {
    cv::Mat resized;
    cv::resize(image, resized, cv::Size(width, height), 0, 0,
               scale < 1.0 ? cv::INTER_AREA : cv::INTER_CUBIC);
    image = resized;
  }
  const cv::Rect centre((width - resolution) / 2, (height - resolution) / 2, resolution, resolution);
  return image(centre).clone();
}

#endif

}  // namespace

ImageFolderListing list_image_folder(const std::string& folder) {
  if (!fs::is_directory(folder))
    throw DataError(folder + ": image folder does not exist (data.path)");
  ImageFolderListing listing;
  std::vector<fs::path> class_dirs;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_directory()) class_dirs.push_back(entry.path());
  std::sort(class_dirs.begin(), class_dirs.end());
  for (const auto& dir : class_dirs) {
    auto files = sorted_images_in(dir);
    if (files.empty()) continue;
    const auto label = static_cast<int64_t>(listing.class_names.size());
    listing.class_names.push_back(dir.filename().string());
    for (auto& file : files) listing.entries.push_back({std::move(file), label});
  }
  if (listing.entries.empty()) {
    auto files = sorted_images_in(folder);
    if (!files.empty()) {
      listing.class_names.push_back(fs::path(folder).lexically_normal().filename().string());
      if (listing.class_names.back().empty()) listing.class_names.back() = "images";
      for (auto& file : files) listing.entries.push_back({std::move(file), 0});
    }
  }
  if (listing.entries.empty())
    throw DataError(folder + ": no images found (looked for *.png, *.jpg, *.jpeg, *.bmp in " +
                    "the folder and in its class sub-folders)");
  return listing;
}

std::shared_ptr<ImageTensorDataset> load_image_folder_dataset(const DataOptions& options) {
#if DIFFUSE_WITH_OPENCV
  ImageFolderListing listing = list_image_folder(options.path);
  size_t wanted = listing.entries.size();
  if (options.limit > 0) wanted = std::min(wanted, static_cast<size_t>(options.limit));

  std::vector<cv::Mat> images;
  std::vector<int64_t> labels;
  int64_t skipped = 0;
  for (const auto& entry : listing.entries) {
    if (images.size() == wanted) break;
    std::string unreadable;
    cv::Mat image = decode(entry.file, options.channels, options.resolution, options.allow_upscale, unreadable);
    if (image.empty()) {
      if (!options.skip_corrupt) throw DataError(unreadable + "; set data.skip_corrupt: true to skip such files");
      ++skipped;
      continue;
    }
    if (!images.empty()) {
      const cv::Mat& first = images.front();
      if (image.rows != first.rows || image.cols != first.cols ||
          image.channels() != first.channels())
        throw DataError(entry.file + ": image is " + std::to_string(image.cols) + "x" +
                        std::to_string(image.rows) + "x" + std::to_string(image.channels()) +
                        " (WxHxC) but " + listing.entries.front().file + " is " +
                        std::to_string(first.cols) + "x" + std::to_string(first.rows) + "x" +
                        std::to_string(first.channels()) +
                        "; set data.resolution (and data.channels) to bring them to one size");
    }
    images.push_back(std::move(image));
    labels.push_back(entry.label);
  }
  if (skipped > 0)
    spdlog::warn("{}: skipped {} unreadable image file(s) (data.skip_corrupt)", options.path,
                 skipped);
  if (images.empty()) throw DataError(options.path + ": every image file is unreadable");

  const auto count = static_cast<int64_t>(images.size());
  const int64_t height = images.front().rows, width = images.front().cols;
  const int64_t channels = images.front().channels();
  torch::Tensor pixels = torch::empty({count, channels, height, width}, torch::kUInt8);
  for (int64_t i = 0; i < count; ++i) {
    const cv::Mat& image = images[static_cast<size_t>(i)];
    torch::Tensor hwc = torch::from_blob(image.data, {height, width, channels},
                                         {static_cast<int64_t>(image.step[0]), channels, 1},
                                         torch::kUInt8);
    pixels[i].copy_(hwc.permute({2, 0, 1}));
  }
  ImageTransform transform{options.channels, options.resolution};
  return std::make_shared<ImageTensorDataset>(
      std::move(pixels), torch::tensor(labels, torch::kInt64), std::move(listing.class_names),
      transform);
#else
  throw DataError(options.path + ": data.type image_folder needs OpenCV, and this build of "
                  "diffuse has none (configure with -DDIFFUSE_WITH_OPENCV=ON)");
#endif
}

}  // namespace diffuse
