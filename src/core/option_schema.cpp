#include "diffuse/core/option_schema.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "diffuse/core/text.h"

namespace diffuse {

std::string option_value_text(double v) {
  char buf[64];
  // Whole numbers below a million as integers ("80", not "8e1").
  if (v == std::floor(v) && std::fabs(v) < 1e6) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  // "1e-05" → "1e-5", "1e+12" → "1e12": the spelling the README uses.
  std::string text(buf);
  const size_t e = text.find('e');
  if (e == std::string::npos) return text;
  std::string exponent = text.substr(e + 1);
  const bool negative = exponent[0] == '-';
  if (exponent[0] == '-' || exponent[0] == '+') exponent.erase(0, 1);
  exponent.erase(0, exponent.find_first_not_of('0'));
  return text.substr(0, e) + "e" + (negative ? "-" : "") + exponent;
}

namespace checks {

ValueCheck<double> range(double lo, double hi) {
  return {"[" + option_value_text(lo) + ", " + option_value_text(hi) + "]",
          [lo, hi](const double& v) {
            return v >= lo && v <= hi ? std::string()
                                      : "must lie in [" + format_double(lo) + ", " +
                                            format_double(hi) + "], found " + format_double(v);
          }};
}

ValueCheck<double> positive(double hi) {
  return {"(0, " + option_value_text(hi) + "]", [hi](const double& v) {
            return v > 0 && v <= hi
                       ? std::string()
                       : "must lie in (0, " + format_double(hi) + "], found " + format_double(v);
          }};
}

ValueCheck<std::string> one_of(const std::vector<std::string>& values) {
  return {join(values, " | "), [values, listed = join(values)](const std::string& v) {
            for (const auto& allowed : values)
              if (v == allowed) return std::string();
            return "unknown value '" + v + "'; valid values: " + listed;
          }};
}

}  // namespace checks

std::string option_reference_markdown(const std::vector<OptionReferenceRow>& rows) {
  const auto cell = [](const std::string& text) {
    std::string out;
    for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
    return out;
  };
  const auto code = [&](const std::string& text) {
    return text.empty() ? std::string() : "`" + cell(text) + "`";
  };
  std::string md = "| key | default | valid values | meaning |\n|---|---|---|---|\n";
  for (const auto& row : rows)
    md += "| " + code(row.key) + " | " + code(row.value) + " | " + cell(row.valid) + " | " +
          cell(row.doc) + " |\n";
  return md;
}

}  // namespace diffuse
