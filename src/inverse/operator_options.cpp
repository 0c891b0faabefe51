#include <algorithm>
#include <limits>

#include "diffuse/core/error.h"
#include "diffuse/core/text.h"
#include "diffuse/data/data_options.h"
#include "diffuse/inverse/operator.h"

namespace diffuse {

namespace {

const OperatorEntry* entry_named(const std::string& name) {
  return find_by_name(operator_table(), name);
}

bool reads(const OperatorEntry& entry, const std::string& key) {
  return std::find(entry.keys.begin(), entry.keys.end(), key) != entry.keys.end();
}

// Why `key` does not apply to the chosen operator ("" when it does): keys of another
// operator are errors that say which keys this one reads, rather than being ignored.
std::string foreign_key_reason(const OperatorOptions& o, const std::string& key) {
  const OperatorEntry* entry = entry_named(o.name);
  if (entry == nullptr || reads(*entry, key)) return "";
  const std::string keys = join(entry->keys);
  return "not used by operator '" + o.name + "' (its keys: " + (keys.empty() ? "none" : keys) + ")";
}

// The doc line of `key`, ending in the operators that read it.
std::string doc_with_users(const std::string& key, const std::string& doc) {
  const auto users =
      names_of(operator_table(), [&key](const OperatorEntry& e) { return reads(e, key); });
  return doc + " (" + join(users) + ")";
}

ValueCheck<std::string> operator_name() {
  return checks::custom<std::string>(
      join(names_of(operator_table()), " | "), [](const std::string& name) {
        return entry_named(name)
                   ? std::string()
                   : "unknown operator '" + name + "'; valid operators: " + operator_names();
      });
}

// A box corner is a pixel position, so it is bounded by the largest image side.
ValueCheck<int64_t> box_corner() {
  const std::string range = "[0, " + std::to_string(kMaxImageSize) + "]";
  return checks::custom<int64_t>("-1 or " + range, [range](const int64_t& v) {
    return v < -1 || v > kMaxImageSize ? "must lie in " + range + ", or be -1 to centre the box"
                                       : std::string();
  });
}

// The key is read only by the operators whose table row lists it.
void own_key(OptionSchema<OperatorOptions>& s, const char* key) {
  s.applies([key](const OperatorOptions& o) { return foreign_key_reason(o, key); });
}

// inpaint_box: the hole and where it goes.
void add_box_keys(OptionSchema<OperatorOptions>& s) {
  using O = OperatorOptions;
  s.field("box_size", &O::box_size, doc_with_users("box_size", "side of the square hole in pixels"),
          checks::int_range<int64_t>(1, kMaxImageSize));
  own_key(s, "box_size");
  s.field("random_box", &O::random_box,
          doc_with_users("random_box", "draw the box position from `seed`"));
  own_key(s, "random_box");
  for (const auto& [key, member] :
       {std::pair{"box_top", &O::box_top}, std::pair{"box_left", &O::box_left}}) {
    s.field(key, member,
            doc_with_users(key, "box corner in pixels; -1 centres the box on that axis"),
            box_corner());
    s.applies([key = std::string(key)](const O& o) {
      const std::string foreign = foreign_key_reason(o, key);
      if (!foreign.empty() || !o.random_box) return foreign;
      return std::string(
          "cannot be set together with random_box: true (the position is drawn from seed)");
    });
  }
}

// inpaint_random, the blurs and super-resolution.
void add_degradation_keys(OptionSchema<OperatorOptions>& s) {
  using O = OperatorOptions;
  s.field(
      "keep_fraction", &O::keep_fraction,
      doc_with_users("keep_fraction", "fraction of pixels kept (the same pixels in every channel)"),
      checks::custom<double>("(0, 1]", [](const double& v) {
        return v > 0.0 && v <= 1.0 ? std::string()
                                   : "must lie in (0, 1], found " + format_double(v);
      }));
  own_key(s, "keep_fraction");
  s.field("kernel_size", &O::kernel_size,
          doc_with_users("kernel_size", "blur kernel side (odd, ≤ 2·image size − 1)"),
          checks::custom<int64_t>("odd, [1, 255]", [](const int64_t& v) {
            return v < 1 || v > 255 || v % 2 == 0
                       ? "must be an odd number in [1, 255], found " + std::to_string(v)
                       : std::string();
          }));
  own_key(s, "kernel_size");
  s.field("blur_sigma", &O::blur_sigma, doc_with_users("blur_sigma", "Gaussian σ in pixels"),
          checks::custom<double>("(0, 100]", [](const double& v) {
            return v > 0.0 && v <= 100.0 ? std::string()
                                         : "must lie in (0, 100] pixels, found " + format_double(v);
          }));
  own_key(s, "blur_sigma");
  s.field("intensity", &O::intensity,
          doc_with_users("intensity",
                         "shake of the motion trajectory: 0 a straight streak, 1 strongly curved"),
          checks::range(0.0, 1.0));
  own_key(s, "intensity");
  s.field("factor", &O::factor,
          doc_with_users("factor", "average-pooling factor; divides the image size"),
          checks::custom<int64_t>("2 | 4", [](const int64_t& v) {
            return v == 2 || v == 4 ? std::string() : "must be 2 or 4, found " + std::to_string(v);
          }));
  own_key(s, "factor");
}

OptionSchema<OperatorOptions> make_schema() {
  using O = OperatorOptions;
  OptionSchema<O> s;
  s.field("name", &O::name, "the operator A of y = A(x) + n", operator_name())
      .required("missing required key (an operator name: " + operator_names() + ")");
  add_box_keys(s);
  add_degradation_keys(s);
  s.field("seed", &O::seed,
          doc_with_users(
              "seed",
              "draws the random box position, the random-pixel mask and the motion trajectory"));
  s.applies([](const O& o) {
    const std::string foreign = foreign_key_reason(o, "seed");
    if (!foreign.empty() || o.name != "inpaint_box" || o.random_box) return foreign;
    return std::string("only used with random_box: true (a fixed box has no randomness)");
  });
  return s;
}

}  // namespace

const OptionSchema<OperatorOptions>& operator_options_schema() { return built_once<make_schema>(); }

}  // namespace diffuse
