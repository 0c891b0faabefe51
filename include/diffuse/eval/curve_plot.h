#pragma once
// Line plots of training curves (loss, learning rate, FD, accuracies) rendered to an RGB
// raster by diffuse itself: no plotting library, no font files. Each panel is one chart with
// a frame, 4-6 ticks at 1-2-5 steps labelled on both axes, a title on top and an x label
// below; the panels are placed side by side in one image.
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace diffuse {

// One line of a chart. Points are drawn in the order given (x ascending, usually the step);
// a point whose x or y is not finite (or, on a log axis, whose y is not positive) is skipped.
struct CurveSeries {
  std::string name;
  std::vector<double> x, y;
};

struct CurvePanel {
  std::string title;
  std::string x_label;
  std::vector<CurveSeries> series;  // one colour each; a legend when there is more than one
  bool log_y = false;               // y on a log10 scale
};

// The panels side by side, each panel_width x panel_height pixels: an RGB image [3, H, W]
// float32 in [-1, 1] on a white background (the layout write_image takes). A panel without a
// point to draw still shows its frame, axes and title, with "no data" inside. Throws Error
// when there is no panel, a panel is smaller than 160 x 120 pixels, or a series has
// different numbers of x and y values.
torch::Tensor render_curves(const std::vector<CurvePanel>& panels, int64_t panel_width = 480,
                            int64_t panel_height = 320);

// render_curves at the default panel size, written atomically to `path` by write_image (the
// extension picks the format: .png needs OpenCV, .ppm always works).
void write_curves(const std::string& path, const std::vector<CurvePanel>& panels);

}  // namespace diffuse
