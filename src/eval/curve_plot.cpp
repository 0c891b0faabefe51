#include "diffuse/eval/curve_plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "bitmap_font.h"
#include "diffuse/core/error.h"
#include "diffuse/io/image_io.h"

namespace diffuse {

namespace {

struct Rgb {
  uint8_t r, g, b;
  bool operator==(const Rgb& other) const { return r == other.r && g == other.g && b == other.b; }
};

constexpr Rgb kBackground{255, 255, 255};
constexpr Rgb kInk{0, 0, 0};  // frame, ticks and labels
constexpr Rgb kGrid{228, 228, 228};
constexpr Rgb kMutedInk{130, 130, 130};
constexpr Rgb kLegendBorder{170, 170, 170};
// Distinct hues dark enough to read on white, handed out in this order.
constexpr std::array<Rgb, 8> kSeriesColours{{{31, 90, 200},
                                             {230, 110, 0},
                                             {30, 150, 60},
                                             {200, 30, 45},
                                             {125, 70, 180},
                                             {0, 150, 160},
                                             {140, 90, 40},
                                             {210, 60, 160}}};

constexpr int64_t kTitleScale = 2;
constexpr int64_t kLabelScale = 1;  // tick labels, the x label and the legend
constexpr int64_t kPad = 10;
constexpr int64_t kTickLength = 4;
// Series with this many points or fewer get a 4 x 4 square at each point (centred like the
// 2-pixel line), so that sparse curves (a few evaluations, a single point) stay visible.
constexpr size_t kMarkerMaxPoints = 40;
constexpr int64_t kMinPanelWidth = 160, kMinPanelHeight = 120;

struct Rect {
  int64_t left, top, right, bottom;  // inclusive
  bool contains(int64_t x, int64_t y) const {
    return x >= left && x <= right && y >= top && y <= bottom;
  }
};

// The RGB raster the panels are painted on (row-major, 3 bytes a pixel). Painting outside the
// current clip rectangle does nothing, so that a panel never spills into its neighbour.
class Canvas {
 public:
  Canvas(int64_t width, int64_t height)
      : width_(width),
        height_(height),
        clip_{0, 0, width - 1, height - 1},
        pixels_(static_cast<size_t>(width * height * 3), 255) {}

  void clip_to(const Rect& clip) { clip_ = clip; }

  void set(int64_t x, int64_t y, Rgb colour) {
    if (!clip_.contains(x, y)) return;
    uint8_t* pixel = &pixels_[static_cast<size_t>((y * width_ + x) * 3)];
    pixel[0] = colour.r, pixel[1] = colour.g, pixel[2] = colour.b;
  }

  Rgb at(int64_t x, int64_t y) const {
    const uint8_t* pixel = &pixels_[static_cast<size_t>((y * width_ + x) * 3)];
    return {pixel[0], pixel[1], pixel[2]};
  }

  void fill(const Rect& rect, Rgb colour) {
    for (int64_t y = rect.top; y <= rect.bottom; ++y)
      for (int64_t x = rect.left; x <= rect.right; ++x) set(x, y, colour);
  }

  void outline(const Rect& rect, Rgb colour) {
    fill({rect.left, rect.top, rect.right, rect.top}, colour);
    fill({rect.left, rect.bottom, rect.right, rect.bottom}, colour);
    fill({rect.left, rect.top, rect.left, rect.bottom}, colour);
    fill({rect.right, rect.top, rect.right, rect.bottom}, colour);
  }

  // Text with its top-left corner at (x, y).
  void text(int64_t x, int64_t y, const std::string& text, int64_t scale, Rgb colour) {
    bitmap_font::for_each_text_pixel(text, scale,
                                     [&](int64_t dx, int64_t dy) { set(x + dx, y + dy, colour); });
  }

  // A line two pixels wide (Bresenham, each step paints a 2 x 2 block).
  void line(int64_t x0, int64_t y0, int64_t x1, int64_t y1, Rgb colour) {
    const int64_t dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int64_t step_x = x0 < x1 ? 1 : -1, step_y = y0 < y1 ? 1 : -1;
    int64_t error = dx + dy;
    while (true) {
      fill({x0, y0, x0 + 1, y0 + 1}, colour);
      if (x0 == x1 && y0 == y1) return;
      const int64_t doubled = 2 * error;
      if (doubled >= dy) error += dy, x0 += step_x;
      if (doubled <= dx) error += dx, y0 += step_y;
    }
  }

  // [3, H, W] float32 in [-1, 1]: byte v becomes v / 127.5 - 1, which write_image maps back to v.
  torch::Tensor to_tensor() const {
    torch::Tensor bytes = torch::empty({height_, width_, 3}, torch::kUInt8);
    std::memcpy(bytes.data_ptr<uint8_t>(), pixels_.data(), pixels_.size());
    return bytes.permute({2, 0, 1}).to(torch::kFloat32).div(127.5).sub(1.0).contiguous();
  }

 private:
  int64_t width_, height_;
  Rect clip_;
  std::vector<uint8_t> pixels_;
};

// One axis of a panel: the range it shows and its labelled ticks. On a log axis `lo` and `hi`
// are log10 of the values at the ends; the ticks are always values.
struct Axis {
  bool log = false;
  double lo = 0, hi = 1;
  std::vector<double> ticks;
  std::vector<std::string> labels;

  // Where `value` lies between the ends: 0 at lo, 1 at hi.
  double fraction(double value) const {
    return ((log ? std::log10(value) : value) - lo) / (hi - lo);
  }
};

bool wants_scientific(double magnitude) {
  return magnitude >= 1e5 || (magnitude > 0 && magnitude < 1e-3);
}

// A tick value with as many decimals as `resolution` (the tick step, or the tick itself on a
// log axis) needs: "0.05", "2000", "1.5e-4".
std::string format_tick(double value, double resolution, bool scientific) {
  if (value == 0) return "0";
  char text[64];
  if (scientific) {
    // The small offset keeps a value a rounding error below a power of ten in its decade.
    const int exponent = static_cast<int>(std::floor(std::log10(std::abs(value)) + 1e-6));
    const double scale = std::pow(10.0, exponent);
    const int decimals =
        std::clamp(static_cast<int>(std::ceil(-std::log10(resolution / scale) - 1e-9)), 0, 6);
    std::snprintf(text, sizeof text, "%.*f", decimals, value / scale);
    // "1e6" beside "5e5", not "1.0e6": the mantissa keeps only the digits it needs.
    std::string mantissa = text;
    if (mantissa.find('.') != std::string::npos) {
      mantissa.erase(mantissa.find_last_not_of('0') + 1);
      if (mantissa.back() == '.') mantissa.pop_back();
    }
    return mantissa + "e" + std::to_string(exponent);
  } else {
    const int decimals =
        std::clamp(static_cast<int>(std::ceil(-std::log10(resolution) - 1e-9)), 0, 10);
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
  }
  return text;
}

// Ticks first, first + step, ... covering a range.
struct LinearTicks {
  double first = 0, step = 1;
  int64_t count = 0;
  double value(int64_t i) const {
    const double v = first + step * static_cast<double>(i);
    return std::abs(v) < step * 1e-6 ? 0.0 : v;  // no "-0" from rounding
  }
  double last() const { return value(count - 1); }
};

bool is_tick_count_wanted(int64_t count) { return count >= 4 && count <= 6; }

// The 1-2-5 step whose ticks, extended outwards to enclose [lo, hi], number 4 to 6 and widen
// the range least; without such a step, the count nearest 5. Steps below `min_step` are not
// considered (1 gives whole decades on a log axis).
LinearTicks choose_linear_ticks(double lo, double hi, double min_step = 0) {
  const int exponent = static_cast<int>(std::floor(std::log10(hi - lo)));
  LinearTicks best;
  for (int e = exponent - 2; e <= exponent + 1; ++e)
    for (double mantissa : {1.0, 2.0, 5.0}) {
      LinearTicks candidate;
      candidate.step = mantissa * std::pow(10.0, e);
      if (candidate.step < min_step) continue;
      // The tolerance keeps an end that sits on a tick from being pushed a step outwards.
      candidate.first = std::floor(lo / candidate.step + 1e-9) * candidate.step;
      const double last = std::ceil(hi / candidate.step - 1e-9) * candidate.step;
      candidate.count = std::llround((last - candidate.first) / candidate.step) + 1;
      bool better = best.count == 0;
      if (!better && is_tick_count_wanted(candidate.count) != is_tick_count_wanted(best.count))
        better = is_tick_count_wanted(candidate.count);
      else if (!better && is_tick_count_wanted(candidate.count))
        better = candidate.last() - candidate.first < (best.last() - best.first) * (1 - 1e-9);
      else if (!better)
        better = std::abs(candidate.count - 5) < std::abs(best.count - 5);
      if (better) best = candidate;
    }
  return best;
}

// A range of zero width (one point, a constant curve) is widened so that it can be drawn.
void widen_flat_range(double& lo, double& hi) {
  const double magnitude = std::max(std::abs(lo), std::abs(hi));
  if (hi - lo > 1e-9 * magnitude) return;
  const double pad = magnitude > 0 ? 0.1 * magnitude : 1.0;
  lo -= pad;
  hi += pad;
}

Axis linear_axis(double lo, double hi) {
  widen_flat_range(lo, hi);
  const LinearTicks ticks = choose_linear_ticks(lo, hi);
  Axis axis;
  axis.lo = ticks.first;
  axis.hi = ticks.last();
  const bool scientific = wants_scientific(std::max(std::abs(axis.lo), std::abs(axis.hi)));
  for (int64_t i = 0; i < ticks.count; ++i) {
    axis.ticks.push_back(ticks.value(i));
    axis.labels.push_back(format_tick(ticks.value(i), ticks.step, scientific));
  }
  return axis;
}

// The values m·10^k (m from `mantissas`, ascending, below 10) from the largest one at or below
// lo to the smallest one at or above hi.
std::vector<double> mantissa_ticks(double lo, double hi, std::initializer_list<double> mantissas) {
  std::vector<double> all;
  const int first_decade = static_cast<int>(std::floor(std::log10(lo))) - 1;
  const int last_decade = static_cast<int>(std::floor(std::log10(hi))) + 1;
  for (int e = first_decade; e <= last_decade; ++e)
    for (double mantissa : mantissas) all.push_back(mantissa * std::pow(10.0, e));
  size_t begin = 0, end = all.size();
  while (begin + 1 < all.size() && all[begin + 1] <= lo * (1 + 1e-9)) ++begin;
  while (end - 1 > begin && all[end - 2] >= hi * (1 - 1e-9)) --end;
  return {all.begin() + static_cast<std::ptrdiff_t>(begin),
          all.begin() + static_cast<std::ptrdiff_t>(end)};
}

// A log10 axis over positive values. Wide ranges get ticks at whole decades, one to three
// decades 1-2-5 (or 1-3) ticks, narrow ranges evenly spaced values; the first of these with
// 4 to 6 ticks is used, else the one nearest 5.
Axis log_axis(double lo, double hi) {
  double log_lo = std::log10(lo), log_hi = std::log10(hi);
  if (log_hi - log_lo < 1e-9) log_lo -= 0.25, log_hi += 0.25;
  lo = std::pow(10.0, log_lo);
  hi = std::pow(10.0, log_hi);
  std::vector<Axis> candidates;
  const auto add_values = [&](const std::vector<double>& values, bool own_resolution, double step) {
    Axis axis;
    axis.log = true;
    for (double v : values)
      if (v > 0) axis.ticks.push_back(v);
    if (axis.ticks.empty()) return;
    axis.lo = std::min(log_lo, std::log10(axis.ticks.front()));
    axis.hi = std::max(log_hi, std::log10(axis.ticks.back()));
    const bool scientific = wants_scientific(axis.ticks.back());
    for (double v : axis.ticks)
      axis.labels.push_back(own_resolution ? format_tick(v, v, wants_scientific(v))
                                           : format_tick(v, step, scientific));
    candidates.push_back(std::move(axis));
  };
  if (log_hi - log_lo >= 1) {
    const LinearTicks decades = choose_linear_ticks(log_lo, log_hi, 1.0);
    std::vector<double> values;
    for (int64_t i = 0; i < decades.count; ++i) values.push_back(std::pow(10.0, decades.value(i)));
    add_values(values, true, 0);
  }
  if (log_hi - log_lo < 4) {
    add_values(mantissa_ticks(lo, hi, {1, 2, 5}), true, 0);
    add_values(mantissa_ticks(lo, hi, {1, 3}), true, 0);
  }
  const LinearTicks even = choose_linear_ticks(lo, hi);
  std::vector<double> values;
  for (int64_t i = 0; i < even.count; ++i) values.push_back(even.value(i));
  add_values(values, false, even.step);

  for (const Axis& axis : candidates)
    if (is_tick_count_wanted(static_cast<int64_t>(axis.ticks.size()))) return axis;
  const auto distance = [](const Axis& axis) {
    return std::abs(static_cast<int64_t>(axis.ticks.size()) - 5);
  };
  return *std::min_element(candidates.begin(), candidates.end(),
                           [&](const Axis& a, const Axis& b) { return distance(a) < distance(b); });
}

struct Point {
  double x, y;
};

// The points of a series that can be drawn on the panel's axes.
std::vector<Point> drawable_points(const CurveSeries& series, bool log_y) {
  std::vector<Point> points;
  for (size_t i = 0; i < series.x.size(); ++i) {
    const double x = series.x[i], y = series.y[i];
    if (std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0)) points.push_back({x, y});
  }
  return points;
}

// Where the legend covers the fewest curve pixels: a corner of the plot area.
Rect place_legend(const Canvas& canvas, const Rect& plot, int64_t width, int64_t height) {
  constexpr int64_t kInset = 6;
  const std::array<Rect, 4> corners{{
      {plot.right - kInset - width, plot.top + kInset, plot.right - kInset,
       plot.top + kInset + height},
      {plot.left + kInset, plot.top + kInset, plot.left + kInset + width,
       plot.top + kInset + height},
      {plot.right - kInset - width, plot.bottom - kInset - height, plot.right - kInset,
       plot.bottom - kInset},
      {plot.left + kInset, plot.bottom - kInset - height, plot.left + kInset + width,
       plot.bottom - kInset},
  }};
  Rect best = corners[0];
  int64_t best_covered = std::numeric_limits<int64_t>::max();
  for (const Rect& corner : corners) {
    int64_t covered = 0;
    for (int64_t y = std::max(corner.top, plot.top); y <= std::min(corner.bottom, plot.bottom); ++y)
      for (int64_t x = std::max(corner.left, plot.left); x <= std::min(corner.right, plot.right);
           ++x) {
        const Rgb pixel = canvas.at(x, y);
        covered += !(pixel == kBackground) && !(pixel == kGrid);
      }
    if (covered < best_covered) best = corner, best_covered = covered;
  }
  return best;
}

void draw_legend(Canvas& canvas, const Rect& plot, const std::vector<CurveSeries>& series) {
  constexpr int64_t kSwatch = 16, kGap = 5;
  const int64_t row_height = bitmap_font::text_height(kLabelScale) + 4;
  int64_t name_width = 0;
  for (const CurveSeries& s : series)
    name_width = std::max(name_width, bitmap_font::text_width(s.name, kLabelScale));
  const int64_t width = kGap + kSwatch + kGap + name_width + kGap;
  const int64_t height = kGap + static_cast<int64_t>(series.size()) * row_height;
  const Rect box = place_legend(canvas, plot, width, height);
  canvas.fill(box, kBackground);
  canvas.outline(box, kLegendBorder);
  for (size_t i = 0; i < series.size(); ++i) {
    const int64_t top = box.top + kGap + static_cast<int64_t>(i) * row_height;
    const int64_t middle = top + (bitmap_font::kGlyphHeight - 1) * kLabelScale / 2;
    const Rgb colour = kSeriesColours[i % kSeriesColours.size()];
    canvas.line(box.left + kGap, middle, box.left + kGap + kSwatch - 2, middle, colour);
    canvas.text(box.left + kGap + kSwatch + kGap, top, series[i].name, kLabelScale, kInk);
  }
}

// The drawable points of each series and the axes that enclose them all.
struct PanelData {
  std::vector<std::vector<Point>> points;
  bool has_data = false;
  Axis x_axis, y_axis;
};

PanelData panel_data(const CurvePanel& panel) {
  PanelData data;
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  for (const CurveSeries& series : panel.series) {
    data.points.push_back(drawable_points(series, panel.log_y));
    for (const Point& p : data.points.back()) {
      x_lo = std::min(x_lo, p.x), x_hi = std::max(x_hi, p.x);
      y_lo = std::min(y_lo, p.y), y_hi = std::max(y_hi, p.y);
    }
  }
  const bool has_data = x_lo <= x_hi;
  data.has_data = has_data;
  data.x_axis = has_data ? linear_axis(x_lo, x_hi) : linear_axis(0, 1);
  data.y_axis = panel.log_y ? (has_data ? log_axis(y_lo, y_hi) : log_axis(1, 10))
                            : (has_data ? linear_axis(y_lo, y_hi) : linear_axis(0, 1));
  return data;
}

// The plot area of a panel and its axes: where a value lands on the canvas.
struct PlotFrame {
  Rect plot;
  const Axis& x_axis;
  const Axis& y_axis;

  int64_t column(double x) const {
    return plot.left +
           std::llround(x_axis.fraction(x) * static_cast<double>(plot.right - plot.left));
  }
  int64_t row(double y) const {
    return plot.bottom -
           std::llround(y_axis.fraction(y) * static_cast<double>(plot.bottom - plot.top));
  }
};

// The plot area inside `area`, after the margins: title above, y labels left, x labels and
// x label below.
Rect plot_area(const Rect& area, const Axis& x_axis, const Axis& y_axis) {
  const int64_t label_height = bitmap_font::text_height(kLabelScale);
  int64_t y_label_width = 0;
  for (const std::string& label : y_axis.labels)
    y_label_width = std::max(y_label_width, bitmap_font::text_width(label, kLabelScale));
  const int64_t last_x_label_width = bitmap_font::text_width(x_axis.labels.back(), kLabelScale);
  return {area.left + kPad + y_label_width + kTickLength + 4,
          area.top + kPad + bitmap_font::text_height(kTitleScale) + kPad,
          area.right - std::max(kPad + 6, last_x_label_width / 2 + 4),
          area.bottom - (kPad + label_height + 6 + label_height + 3 + kTickLength)};
}

// Grid lines, the frame, and the ticks with their labels.
void draw_axes(Canvas& canvas, const PlotFrame& frame) {
  const Rect& plot = frame.plot;
  const int64_t cap_height = (bitmap_font::kGlyphHeight - 1) * kLabelScale;
  for (double tick : frame.x_axis.ticks)
    canvas.fill({frame.column(tick), plot.top, frame.column(tick), plot.bottom}, kGrid);
  for (double tick : frame.y_axis.ticks)
    canvas.fill({plot.left, frame.row(tick), plot.right, frame.row(tick)}, kGrid);
  canvas.outline(plot, kInk);
  for (size_t i = 0; i < frame.x_axis.ticks.size(); ++i) {
    const int64_t x = frame.column(frame.x_axis.ticks[i]);
    canvas.fill({x, plot.bottom + 1, x, plot.bottom + kTickLength}, kInk);
    const int64_t width = bitmap_font::text_width(frame.x_axis.labels[i], kLabelScale);
    canvas.text(x - width / 2, plot.bottom + kTickLength + 3, frame.x_axis.labels[i], kLabelScale, kInk);
  }
  for (size_t i = 0; i < frame.y_axis.ticks.size(); ++i) {
    const int64_t y = frame.row(frame.y_axis.ticks[i]);
    canvas.fill({plot.left - kTickLength, y, plot.left - 1, y}, kInk);
    const int64_t width = bitmap_font::text_width(frame.y_axis.labels[i], kLabelScale);
    canvas.text(plot.left - kTickLength - 3 - width, y - cap_height / 2, frame.y_axis.labels[i],
                kLabelScale, kInk);
  }
}

// The title centred over the panel and the x label centred under the plot area.
void draw_titles(Canvas& canvas, const CurvePanel& panel, const Rect& area, const Rect& plot) {
  const int64_t label_height = bitmap_font::text_height(kLabelScale);
  // A title too wide for the panel at the title size is drawn at the label size, centred in
  // the title band, rather than cut off at the panel's edge.
  const bool title_fits = bitmap_font::text_width(panel.title, kTitleScale) <= area.right - area.left - 4;
  const int64_t title_scale = title_fits ? kTitleScale : kLabelScale;
  const int64_t title_width = bitmap_font::text_width(panel.title, title_scale);
  canvas.text(std::max(area.left + 2, (area.left + area.right + 1) / 2 - title_width / 2),
              area.top + kPad + (bitmap_font::text_height(kTitleScale) - bitmap_font::text_height(title_scale)) / 2,
              panel.title, title_scale, kInk);
  const int64_t x_label_width = bitmap_font::text_width(panel.x_label, kLabelScale);
  canvas.text((plot.left + plot.right + 1) / 2 - x_label_width / 2,
              area.bottom - kPad - label_height, panel.x_label, kLabelScale, kInk);
}

void draw_no_data(Canvas& canvas, const Rect& plot) {
  const std::string message = "no data";
  canvas.text((plot.left + plot.right) / 2 - bitmap_font::text_width(message, kTitleScale) / 2,
              (plot.top + plot.bottom) / 2 - bitmap_font::text_height(kTitleScale) / 2, message,
              kTitleScale, kMutedInk);
}

void draw_series(Canvas& canvas, const PlotFrame& frame, const std::vector<std::vector<Point>>& points) {
  for (size_t s = 0; s < points.size(); ++s) {
    const Rgb colour = kSeriesColours[s % kSeriesColours.size()];
    const std::vector<Point>& series = points[s];
    for (size_t i = 1; i < series.size(); ++i)
      canvas.line(frame.column(series[i - 1].x), frame.row(series[i - 1].y), frame.column(series[i].x),
                  frame.row(series[i].y), colour);
    if (series.size() <= kMarkerMaxPoints)
      for (const Point& p : series)
        canvas.fill({frame.column(p.x) - 1, frame.row(p.y) - 1, frame.column(p.x) + 2, frame.row(p.y) + 2},
                    colour);
  }
}

void draw_panel(Canvas& canvas, const CurvePanel& panel, const Rect& area) {
  const PanelData data = panel_data(panel);
  const PlotFrame frame{plot_area(area, data.x_axis, data.y_axis), data.x_axis, data.y_axis};

  canvas.clip_to(area);
  draw_axes(canvas, frame);
  draw_titles(canvas, panel, area, frame.plot);

  canvas.clip_to(frame.plot);
  if (!data.has_data) {
    draw_no_data(canvas, frame.plot);
    return;
  }
  draw_series(canvas, frame, data.points);
  if (panel.series.size() > 1) draw_legend(canvas, frame.plot, panel.series);
}

}  // namespace

torch::Tensor render_curves(const std::vector<CurvePanel>& panels, int64_t panel_width,
                            int64_t panel_height) {
  if (panels.empty())
    throw Error("render_curves: no panels to draw (pass at least one CurvePanel)");
  if (panel_width < kMinPanelWidth || panel_height < kMinPanelHeight)
    throw Error("render_curves: panels of " + std::to_string(panel_width) + "x" +
                std::to_string(panel_height) + " pixels are too small; expected at least " +
                std::to_string(kMinPanelWidth) + "x" + std::to_string(kMinPanelHeight));
  const auto count = static_cast<int64_t>(panels.size());
  if (panel_width > kMaxImagePixels / panel_height / count)
    throw Error("render_curves: " + std::to_string(count) + " panels of " +
                std::to_string(panel_width) + "x" + std::to_string(panel_height) +
                " pixels exceed the largest image diffuse writes (" +
                std::to_string(kMaxImagePixels) + " pixels)");
  for (const CurvePanel& panel : panels)
    for (const CurveSeries& series : panel.series)
      if (series.x.size() != series.y.size())
        throw Error("render_curves: series '" + series.name + "' of panel '" + panel.title +
                    "' has " + std::to_string(series.x.size()) + " x values and " +
                    std::to_string(series.y.size()) + " y values; expected as many of each");

  Canvas canvas(panel_width * count, panel_height);
  for (int64_t i = 0; i < count; ++i)
    draw_panel(canvas, panels[static_cast<size_t>(i)],
               {i * panel_width, 0, (i + 1) * panel_width - 1, panel_height - 1});
  return canvas.to_tensor();
}

void write_curves(const std::string& path, const std::vector<CurvePanel>& panels) {
  write_image(path, render_curves(panels));
}

}  // namespace diffuse
