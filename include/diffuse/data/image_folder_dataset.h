#pragma once
// A folder of image files: path/<class>/*.{png,jpg,jpeg,bmp}, the class index being the
// position of the sub-folder name in sorted order; images directly inside `path` (and no
// sub-folders with images) form a single class named after the folder. Images are decoded
// with OpenCV, resized (shorter side to `resolution`) and centre-cropped at load time so
// that they fit one uint8 tensor; needs a build with DIFFUSE_WITH_OPENCV.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "diffuse/data/data_options.h"
#include "diffuse/data/image_tensor_dataset.h"

namespace diffuse {

struct ImageFolderEntry {
  std::string file;
  int64_t label;
};

// The files of an image folder and the class-name mapping (label k ↔ class_names[k]),
// sorted by class then file name. Throws DataError for a missing folder or no images.
struct ImageFolderListing {
  std::vector<std::string> class_names;
  std::vector<ImageFolderEntry> entries;
};
ImageFolderListing list_image_folder(const std::string& folder);

// Decodes the listing into memory. `skip_corrupt` skips unreadable files (logged with a
// count); otherwise the first one throws DataError naming it.
std::shared_ptr<ImageTensorDataset> load_image_folder_dataset(const DataOptions& options);

}  // namespace diffuse
