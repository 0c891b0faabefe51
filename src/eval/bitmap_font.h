#pragma once
// A built-in 5x7 bitmap font (with one descender row) for the labels of the curve plots, so
// that drawing text needs no font file and no library. It covers digits, A-Z, a-z, σ and the
// punctuation that numbers and metric names use; any other character is drawn as '?'.
#include <array>
#include <cstdint>
#include <functional>
#include <string>

namespace diffuse::bitmap_font {

inline constexpr int64_t kGlyphWidth = 5;
// Seven rows for capitals and digits, an eighth for the descenders of g, j, p, q, y and '_'.
inline constexpr int64_t kGlyphHeight = 8;
// One blank column between neighbouring glyphs.
inline constexpr int64_t kAdvance = kGlyphWidth + 1;

// The rows of a glyph, top first; bit 4 is the leftmost column.
using GlyphRows = std::array<uint8_t, kGlyphHeight>;

// The glyph of a Unicode code point ('?' for one the font lacks).
const GlyphRows& glyph(char32_t code_point);

// The code points of UTF-8 text; a malformed byte becomes U+FFFD (drawn as '?').
std::u32string decode_utf8(const std::string& text);

// Width and height in pixels of `text` drawn at `scale` (each font pixel a scale x scale block).
int64_t text_width(const std::string& text, int64_t scale);
inline int64_t text_height(int64_t scale) { return kGlyphHeight * scale; }

// Calls paint(x, y) for every lit pixel of `text` drawn at `scale` with its top-left corner at
// (0, 0); the caller offsets and clips.
void for_each_text_pixel(const std::string& text, int64_t scale,
                         const std::function<void(int64_t x, int64_t y)>& paint);

}  // namespace diffuse::bitmap_font
