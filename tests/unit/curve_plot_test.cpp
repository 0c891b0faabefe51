// The curve renderer: image size, where a series' pixels land on linear and log axes, the
// number of labelled ticks, "no data" panels, single points and flat curves, the legend, and
// the bitmap font's coverage.
#include "diffuse/eval/curve_plot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "diffuse/core/error.h"
#include "diffuse/io/image_io.h"
#include "eval/bitmap_font.h"
#include "support/expect_text.h"

using namespace diffuse;

namespace {

struct Rgb {
  int r, g, b;
};

// A rendered image as bytes, with the questions the tests ask of its pixels.
class Picture {
 public:
  explicit Picture(const torch::Tensor& image) : hwc_(to_uint8_hwc(image).contiguous()) {}
  int64_t width() const { return hwc_.size(1); }
  int64_t height() const { return hwc_.size(0); }
  Rgb at(int64_t x, int64_t y) const {
    const uint8_t* p = hwc_.data_ptr<uint8_t>() + (y * width() + x) * 3;
    return {p[0], p[1], p[2]};
  }
  // A series colour: saturated, unlike the white, greys and black of everything else.
  bool coloured(int64_t x, int64_t y) const {
    const Rgb p = at(x, y);
    return std::max({p.r, p.g, p.b}) - std::min({p.r, p.g, p.b}) > 60;
  }
  bool black(int64_t x, int64_t y) const {
    const Rgb p = at(x, y);
    return p.r == 0 && p.g == 0 && p.b == 0;
  }
  bool light_grey_or_white(int64_t x, int64_t y) const {
    const Rgb p = at(x, y);
    return p.r == p.g && p.g == p.b && p.r >= 200;
  }

 private:
  torch::Tensor hwc_;
};

// The plot frame: the rows and columns that are black over most of their length.
struct Frame {
  int64_t left = -1, top = -1, right = -1, bottom = -1;
};

Frame find_frame(const Picture& picture) {
  Frame frame;
  std::vector<int64_t> rows, columns;
  for (int64_t y = 0; y < picture.height(); ++y) {
    int64_t count = 0;
    for (int64_t x = 0; x < picture.width(); ++x) count += picture.black(x, y);
    if (count > picture.width() / 2) rows.push_back(y);
  }
  for (int64_t x = 0; x < picture.width(); ++x) {
    int64_t count = 0;
    for (int64_t y = 0; y < picture.height(); ++y) count += picture.black(x, y);
    if (count > picture.height() / 2) columns.push_back(x);
  }
  EXPECT_EQ(rows.size(), 2u) << "expected the top and bottom of one frame";
  EXPECT_EQ(columns.size(), 2u) << "expected the left and right of one frame";
  if (rows.size() == 2 && columns.size() == 2) frame = {columns[0], rows[0], columns[1], rows[1]};
  return frame;
}

// Groups of positions in `hits` (ascending) that are at most `gap` apart: one per label. Within
// a label glyphs leave up to 4 blank columns (around '.'), between labels there are dozens.
int64_t count_groups(const std::vector<int64_t>& hits, int64_t gap) {
  int64_t groups = 0;
  for (size_t i = 0; i < hits.size(); ++i) groups += i == 0 || hits[i] - hits[i - 1] > gap;
  return groups;
}

// The y tick labels: rows with black pixels left of the frame and its tick marks.
int64_t y_label_count(const Picture& picture, const Frame& frame) {
  std::vector<int64_t> rows;
  for (int64_t y = frame.top - 6; y <= frame.bottom + 6; ++y)
    for (int64_t x = 0; x < frame.left - 6; ++x)
      if (picture.black(x, y)) {
        rows.push_back(y);
        break;
      }
  return count_groups(rows, 6);
}

// The x tick labels: columns with black pixels in the band of rows just under the tick marks.
int64_t x_label_count(const Picture& picture, const Frame& frame) {
  std::vector<int64_t> columns;
  for (int64_t x = 0; x < picture.width(); ++x)
    for (int64_t y = frame.bottom + 6; y < frame.bottom + 6 + bitmap_font::kGlyphHeight; ++y)
      if (picture.black(x, y)) {
        columns.push_back(x);
        break;
      }
  return count_groups(columns, 6);
}

CurvePanel one_series(std::vector<double> x, std::vector<double> y, bool log_y = false) {
  return {"title", "step", {{"series", std::move(x), std::move(y)}}, log_y};
}

CurvePanel straight_line(double lo, double hi, int64_t points) {
  std::vector<double> x, y;
  for (int64_t i = 0; i < points; ++i) {
    const double v = lo + (hi - lo) * static_cast<double>(i) / static_cast<double>(points - 1);
    x.push_back(v);
    y.push_back(v);
  }
  return one_series(x, y);
}

// The mean row of the coloured pixels in columns [x - 1, x + 1].
double mean_coloured_row(const Picture& picture, int64_t x) {
  double sum = 0;
  int64_t count = 0;
  for (int64_t column = x - 1; column <= x + 1; ++column)
    for (int64_t y = 0; y < picture.height(); ++y)
      if (picture.coloured(column, y)) sum += static_cast<double>(y), ++count;
  EXPECT_GT(count, 0) << "no curve pixels near column " << x;
  return count ? sum / static_cast<double>(count) : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

TEST(CurvePlot, ImageIsThePanelsSideBySideInMinusOneToOne) {
  const std::vector<CurvePanel> panels(3, straight_line(0, 1, 5));
  const torch::Tensor image = render_curves(panels, 200, 150);
  EXPECT_EQ(image.sizes(), (std::vector<int64_t>{3, 150, 600}));
  EXPECT_EQ(image.scalar_type(), torch::kFloat32);
  EXPECT_GE(image.min().item<float>(), -1.0f);
  EXPECT_LE(image.max().item<float>(), 1.0f);
  EXPECT_EQ(render_curves({straight_line(0, 1, 5)}).sizes(), (std::vector<int64_t>{3, 320, 480}));
}

TEST(CurvePlot, TheLineYEqualsXRunsAlongTheDiagonalOfThePlotArea) {
  // 0..10 has nice ends (ticks at 0, 2, ..., 10), so the axes end exactly at the data.
  const Picture picture(render_curves({straight_line(0, 10, 101)}));
  const Frame frame = find_frame(picture);
  ASSERT_GT(frame.right - frame.left, 200);
  ASSERT_GT(frame.bottom - frame.top, 150);
  const auto diagonal_row = [&](int64_t x) {
    return static_cast<double>(frame.bottom) - static_cast<double>(x - frame.left) /
                                                   static_cast<double>(frame.right - frame.left) *
                                                   static_cast<double>(frame.bottom - frame.top);
  };
  int64_t coloured = 0, white = 0, inside = 0;
  for (int64_t y = 0; y < picture.height(); ++y)
    for (int64_t x = 0; x < picture.width(); ++x) {
      if (picture.coloured(x, y)) {
        ++coloured;
        EXPECT_TRUE(x >= frame.left && x <= frame.right && y >= frame.top && y <= frame.bottom)
            << x << "," << y;
        EXPECT_NEAR(static_cast<double>(y), diagonal_row(x), 2.5) << "column " << x;
      } else if (x > frame.left && x < frame.right && y > frame.top && y < frame.bottom) {
        ++inside;
        const Rgb p = picture.at(x, y);
        white += p.r == 255 && p.g == 255 && p.b == 255;
        // Away from the line the plot area is background and grid only.
        if (std::abs(static_cast<double>(y) - diagonal_row(x)) > 4) {
          EXPECT_TRUE(picture.light_grey_or_white(x, y)) << x << "," << y;
        }
      }
    }
  EXPECT_GT(white, inside * 8 / 10);
  // The line is unbroken from corner to corner.
  for (int64_t x = frame.left + 1; x < frame.right; ++x) {
    bool any = false;
    for (int64_t y = frame.top; y <= frame.bottom && !any; ++y) any = picture.coloured(x, y);
    EXPECT_TRUE(any) << "gap in the line at column " << x;
  }
  EXPECT_TRUE(picture.coloured(frame.left, frame.bottom) ||
              picture.coloured(frame.left + 1, frame.bottom));
  EXPECT_TRUE(picture.coloured(frame.right, frame.top) ||
              picture.coloured(frame.right, frame.top + 1));
  EXPECT_GT(coloured, frame.right - frame.left);
  // Outside the frame's margins the image is white.
  EXPECT_TRUE(picture.light_grey_or_white(picture.width() - 1, 0));
  EXPECT_TRUE(picture.light_grey_or_white(picture.width() - 1, picture.height() - 1));
}

TEST(CurvePlot, LogYPutsOneTenAndAHundredEquallyFarApart) {
  const Picture picture(render_curves({one_series({0, 1, 2}, {1, 10, 100}, true)}));
  const Frame frame = find_frame(picture);
  const double row_1 = mean_coloured_row(picture, frame.left + 1);
  const double row_10 = mean_coloured_row(picture, (frame.left + frame.right) / 2);
  const double row_100 = mean_coloured_row(picture, frame.right - 1);
  EXPECT_NEAR(row_1 - row_10, row_10 - row_100, 2.0);
  // 1 and 100 are ticks, so they sit at the bottom and top of the frame.
  EXPECT_NEAR(row_1, static_cast<double>(frame.bottom), 2.0);
  EXPECT_NEAR(row_100, static_cast<double>(frame.top), 2.0);
  // On a linear axis 10 would be near the bottom instead.
  EXPECT_NEAR(row_10, static_cast<double>(frame.top + frame.bottom) / 2, 2.0);
}

TEST(CurvePlot, BothAxesHaveFourToSixLabelledTicks) {
  const std::vector<std::pair<double, double>> ranges = {
      {0, 10}, {0.03, 0.68}, {50, 1500}, {-3.2, 7.9}, {1e-5, 9e-4}, {0.9, 0.93}, {-1e6, 1e6}};
  for (const auto& [lo, hi] : ranges) {
    for (bool log_y : {false, true}) {
      if (log_y && lo <= 0) continue;
      CurvePanel panel = straight_line(lo, hi, 30);
      panel.log_y = log_y;
      const Picture picture(render_curves({panel}));
      const Frame frame = find_frame(picture);
      const int64_t y_labels = y_label_count(picture, frame),
                    x_labels = x_label_count(picture, frame);
      EXPECT_GE(y_labels, 4) << lo << ".." << hi << (log_y ? " log" : "");
      EXPECT_LE(y_labels, 6) << lo << ".." << hi << (log_y ? " log" : "");
      EXPECT_GE(x_labels, 4) << lo << ".." << hi;
      EXPECT_LE(x_labels, 6) << lo << ".." << hi;
    }
  }
}

TEST(CurvePlot, APanelWithoutFinitePointsShowsItsFrameAndNoData) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<CurvePanel> empty_panels = {
      one_series({0, 1, 2}, {nan, inf, -inf}),
      one_series({0, 1}, {-1, 0}, true),  // nothing positive for a log axis
      {"nothing", "step", {}, false},
  };
  for (const CurvePanel& panel : empty_panels) {
    const Picture picture(render_curves({panel}));
    const Frame frame = find_frame(picture);
    int64_t coloured = 0, grey_text = 0;
    for (int64_t y = frame.top + 1; y < frame.bottom; ++y)
      for (int64_t x = frame.left + 1; x < frame.right; ++x) {
        coloured += picture.coloured(x, y);
        const Rgb p = picture.at(x, y);
        grey_text += p.r == p.g && p.g == p.b && p.r > 60 && p.r < 200;
      }
    EXPECT_EQ(coloured, 0);
    EXPECT_GT(grey_text, 50) << "expected the grey 'no data' text inside the frame";
    int64_t title_ink = 0;
    for (int64_t y = 0; y < frame.top; ++y)
      for (int64_t x = 0; x < picture.width(); ++x) title_ink += picture.black(x, y);
    EXPECT_GT(title_ink, 20) << "expected a title above the frame";
  }
}

TEST(CurvePlot, ATitleTooWideForThePanelIsDrawnSmallerInsteadOfCutOff) {
  // 40 characters: 480 px at the title size, wider than the 480-px panel less its margins.
  CurvePanel panel = straight_line(0, 1, 3);
  panel.title = "deviation from the straight path per pix";
  const Picture picture(render_curves({panel}));
  const Frame frame = find_frame(picture);
  int64_t first = picture.width(), last = -1;
  // The title band, above the top tick label (centred on the frame's top edge).
  for (int64_t y = 0; y < frame.top - bitmap_font::kGlyphHeight; ++y)
    for (int64_t x = 0; x < picture.width(); ++x)
      if (picture.black(x, y)) first = std::min(first, x), last = std::max(last, x);
  ASSERT_GE(last, 0) << "expected a title above the frame";
  // Ink clear of both edges, centred within a few pixels.
  EXPECT_GT(first, 2);
  EXPECT_LT(last, picture.width() - 3);
  EXPECT_NEAR(static_cast<double>(first + last) / 2.0, picture.width() / 2.0, 4.0);
}

TEST(CurvePlot, SkipsNonFinitePointsAndDrawsTheRest) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Picture with_gap(render_curves({one_series({0, 5, 10}, {0, nan, 10})}));
  const Picture without(render_curves({one_series({0, 10}, {0, 10})}));
  for (int64_t y = 0; y < with_gap.height(); ++y)
    for (int64_t x = 0; x < with_gap.width(); ++x)
      ASSERT_EQ(with_gap.coloured(x, y), without.coloured(x, y));
}

TEST(CurvePlot, ASinglePointAndAFlatCurveSitInTheMiddle) {
  {
    const Picture picture(render_curves({one_series({5}, {0.2})}));
    const Frame frame = find_frame(picture);
    double sum_x = 0, sum_y = 0;
    int64_t count = 0;
    for (int64_t y = 0; y < picture.height(); ++y)
      for (int64_t x = 0; x < picture.width(); ++x)
        if (picture.coloured(x, y))
          sum_x += static_cast<double>(x), sum_y += static_cast<double>(y), ++count;
    ASSERT_GT(count, 0) << "a single point must be visible";
    EXPECT_NEAR(sum_x / static_cast<double>(count),
                static_cast<double>(frame.left + frame.right) / 2, 2.0);
    EXPECT_NEAR(sum_y / static_cast<double>(count),
                static_cast<double>(frame.top + frame.bottom) / 2, 2.0);
  }
  {
    std::vector<double> x, y;
    for (int i = 0; i <= 100; ++i) x.push_back(i), y.push_back(3.0);
    const Picture picture(render_curves({one_series(x, y)}));
    const Frame frame = find_frame(picture);
    int64_t top = picture.height(), bottom = -1;
    for (int64_t row = 0; row < picture.height(); ++row)
      for (int64_t column = 0; column < picture.width(); ++column)
        if (picture.coloured(column, row)) top = std::min(top, row), bottom = std::max(bottom, row);
    ASSERT_GE(bottom, 0);
    EXPECT_LE(bottom - top, 2);
    EXPECT_NEAR(static_cast<double>(top + bottom) / 2,
                static_cast<double>(frame.top + frame.bottom) / 2, 2.0);
  }
}

TEST(CurvePlot, SeveralSeriesGetTheirOwnColoursAndALegend) {
  const std::vector<double> ends = {0, 10};
  // 2.5 and 7.5 lie inside the axis (2 to 8), clear of the frame.
  CurvePanel alone = {"t", "step", {{"low", ends, {2.5, 2.5}}}, false};
  CurvePanel pair = {"t", "step", {{"low", ends, {2.5, 2.5}}, {"high", ends, {7.5, 7.5}}}, false};
  const Picture single(render_curves({alone}));
  const Picture both(render_curves({pair}));
  const auto black_inside = [](const Picture& picture) {
    const Frame frame = find_frame(picture);
    int64_t count = 0;
    for (int64_t y = frame.top + 1; y < frame.bottom; ++y)
      for (int64_t x = frame.left + 1; x < frame.right; ++x) count += picture.black(x, y);
    return count;
  };
  EXPECT_EQ(black_inside(single), 0) << "one series: no legend";
  EXPECT_GT(black_inside(both), 20) << "two series: a legend with their names";

  // The two flat lines: the colour at the middle column of each differs.
  const Frame frame = find_frame(both);
  const int64_t middle = (frame.left + frame.right) / 2;
  std::vector<Rgb> colours;
  for (int64_t y = frame.top + 1; y < frame.bottom; ++y)
    if (both.coloured(middle, y) &&
        (colours.empty() || std::abs(colours.back().r - both.at(middle, y).r) > 30 ||
         std::abs(colours.back().b - both.at(middle, y).b) > 30))
      colours.push_back(both.at(middle, y));
  EXPECT_EQ(colours.size(), 2u);
}

TEST(CurvePlot, RefusesWhatItCannotDraw) {
  EXPECT_CONTAINS(test::error_message<Error>([] { render_curves({}); }), "no panels");
  EXPECT_CONTAINS(
      test::error_message<Error>([] { render_curves({straight_line(0, 1, 3)}, 100, 50); }),
      "100x50 pixels are too small");
  const CurvePanel uneven = {"fd", "step", {{"fd", {1, 2, 3}, {1, 2}}}, false};
  const std::string message = test::error_message<Error>([&] { render_curves({uneven}); });
  EXPECT_CONTAINS(message, "series 'fd' of panel 'fd' has 3 x values and 2 y values");
}

TEST(BitmapFont, HasAGlyphForEveryCharacterTheLabelsUse) {
  const std::u32string needed =
      U"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-+/()_:%=,\u03c3";
  const auto& unknown = bitmap_font::glyph(U'?');
  for (char32_t c : needed)
    EXPECT_NE(bitmap_font::glyph(c), unknown) << "no glyph for U+" << std::hex << uint32_t(c);
  EXPECT_EQ(bitmap_font::glyph(U'\u20ac'), unknown);  // '€' is drawn as '?'
  // Widths count characters, not bytes: σ is two bytes of UTF-8 and one glyph.
  EXPECT_EQ(bitmap_font::text_width("\u03c3=0.1", 1), bitmap_font::text_width("s=0.1", 1));
  EXPECT_EQ(bitmap_font::text_width("ab", 2), (2 * bitmap_font::kAdvance - 1) * 2);
  EXPECT_EQ(bitmap_font::decode_utf8("a\xff"
                                     "b"),
            U"a\ufffdb");
}
