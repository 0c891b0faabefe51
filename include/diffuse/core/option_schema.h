#pragma once
// One description per option struct (DESIGN §2): each key's member, valid values and doc
// line, written once in the area that owns the struct. From it come
//   read()      strict YAML parsing (file:line errors, unknown keys refused),
//   emit()      the resolved YAML written into run folders and checkpoints,
//   validate()  the same checks for a struct built in C++ (models check their options),
//   reference() the rows of README.md "Config reference" (`diffuse config --reference`).
// Defaults are the struct's own member initialisers, so a new key is one struct member and
// one schema row. Cross-key rules (sigma_max > sigma_min) are `rule`s of the section;
// parse-time side effects (a preset or schedule filling defaults) are `after_read` hooks.
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "diffuse/core/config_node.h"
#include "diffuse/core/error.h"
#include "diffuse/core/text.h"

namespace diffuse {

// Reports a problem with `key` of the section being checked; it throws, never returns.
using OptionFail = std::function<void(const std::string& key, const std::string& message)>;

// The valid values of one key: `text` describes them for the reference ("[1, 64]"), and
// `problem` returns "" for a valid value, else the message ("must be an integer in ...").
template <class T>
struct ValueCheck {
  std::string text;
  std::function<std::string(const T&)> problem;
};

// Text of a value as the reference shows it (numbers as YAML reads them back).
inline std::string option_value_text(bool v) { return v ? "true" : "false"; }
inline std::string option_value_text(int v) { return std::to_string(v); }
inline std::string option_value_text(int64_t v) { return std::to_string(v); }
inline std::string option_value_text(uint64_t v) { return std::to_string(v); }
std::string option_value_text(double v);  // 4.0 → "4", 0.0002 → "0.0002", 1e-05 → "1e-5"
inline std::string option_value_text(const std::string& v) { return v; }
template <class T>
std::string option_value_text(const std::vector<T>& v) {
  return "[" + join(v, ", ", [](const T& item) { return option_value_text(item); }) + "]";
}

namespace checks {

// Integers in [lo, hi]: "must be an integer in [lo, hi], found v".
template <class T>
ValueCheck<T> int_range(int64_t lo, int64_t hi) {
  const std::string text = hi == std::numeric_limits<int64_t>::max()
                               ? "≥ " + std::to_string(lo)
                               : "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return {text, [lo, hi](const T& v) {
            return static_cast<int64_t>(v) < lo || static_cast<int64_t>(v) > hi
                       ? "must be an integer in [" + std::to_string(lo) + ", " +
                             std::to_string(hi) + "], found " + std::to_string(v)
                       : std::string();
          }};
}
// 0 (a default taken elsewhere, `zero_means`) or an integer in [lo, hi].
template <class T>
ValueCheck<T> zero_or_int_range(int64_t lo, int64_t hi, const std::string& zero_means) {
  return {"0 or [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", [=](const T& v) {
            return v != 0 && (static_cast<int64_t>(v) < lo || static_cast<int64_t>(v) > hi)
                       ? "must be 0 (" + zero_means + ") or an integer in [" + std::to_string(lo) +
                             ", " + std::to_string(hi) + "], found " + std::to_string(v)
                       : std::string();
          }};
}
// Numbers in [lo, hi].
ValueCheck<double> range(double lo, double hi);
// Numbers in (0, hi].
ValueCheck<double> positive(double hi);
// One of `values` (a string key with a fixed set of spellings).
ValueCheck<std::string> one_of(const std::vector<std::string>& values);
// Values checked by a rule of the section (they depend on other keys): the text only.
template <class T>
ValueCheck<T> by_rule(std::string text) {
  return {std::move(text), nullptr};
}
// Anything else: the reference text and the test.
template <class T>
ValueCheck<T> custom(std::string text, std::function<std::string(const T&)> problem) {
  return {std::move(text), std::move(problem)};
}

// Reports `problem` (a ValueCheck's verdict) for `key` unless it is empty: for rules whose
// bounds come from other keys, e.g. check_value(fail, "min_lr", range(0, o.lr).problem(o.min_lr)).
inline void check_value(const OptionFail& fail, const std::string& key,
                        const std::string& problem) {
  if (!problem.empty()) fail(key, problem);
}

}  // namespace checks

// One row of the config reference.
struct OptionReferenceRow {
  std::string key;    // dotted path, e.g. "train.lr"
  std::string value;  // default
  std::string valid;  // valid values
  std::string doc;
};

template <class S>
class OptionSchema {
 public:
  // Why `key` does not apply to `s` ("" when it does): a key present where it does not apply
  // is an error with this message (e.g. an operator key the chosen operator does not read).
  using Applies = std::function<std::string(const S&)>;

  // A plain key: bool, int, int64_t, uint64_t, double, string or a vector of int/double.
  template <class T>
  OptionSchema& field(const char* key, T S::*member, std::string doc, ValueCheck<T> check = {}) {
    if constexpr (std::is_same_v<T, bool>) check.text = "true | false";
    Field f = base_field(key, std::move(doc), check.text);
    f.read = [key, member](ConfigNode& n, S& s) { read_value(n, key, s.*member); };
    f.emit = [key, member](YAML::Node& n, const S& s) { emit_value(n, key, s.*member); };
    if (check.problem) f.problem = [member, p = check.problem](const S& s) { return p(s.*member); };
    f.value_text = [member](const S& s) { return option_value_text(s.*member); };
    fields_.push_back(std::move(f));
    return *this;
  }

  // An enum key spelt by `names`.
  template <class E, size_t N>
  OptionSchema& choice(const char* key, E S::*member, const std::array<EnumName<E>, N>& names,
                       std::string doc) {
    Field f = base_field(key, std::move(doc), join(names_of(names), " | "));
    f.read = [key, member, &names](ConfigNode& n, S& s) { n.read_enum(key, s.*member, names); };
    f.emit = [key, member, &names](YAML::Node& n, const S& s) {
      emit_enum(n, key, s.*member, names);
    };
    f.value_text = [member, &names](const S& s) {
      return std::string(enum_name(s.*member, names));
    };
    fields_.push_back(std::move(f));
    return *this;
  }

  // A nested mapping described by its own schema (which must outlive this one).
  template <class C>
  OptionSchema& section(const char* key, C S::*member, const OptionSchema<C>& schema) {
    Field f = base_field(key, "", "");
    f.read = [key, member, &schema](ConfigNode& n, S& s) { schema.read(n.child(key), s.*member); };
    f.emit = [key, member, &schema](YAML::Node& n, const S& s) { n[key] = schema.emit(s.*member); };
    f.validate = [member, &schema](const S& s, const std::string& path) {
      schema.validate(s.*member, path);
    };
    f.reference = [member, &schema](const S& s, const std::string& path,
                                    std::vector<OptionReferenceRow>& rows) {
      schema.append_reference(s.*member, path, rows);
    };
    fields_.push_back(std::move(f));
    return *this;
  }

  // The keys of a member struct read from this same mapping (e.g. the DPS settings at the
  // top level of a restore task).
  template <class C>
  OptionSchema& flatten(C S::*member, const OptionSchema<C>& schema) {
    Field f = base_field("", "", "");
    f.read = [member, &schema](ConfigNode& n, S& s) { schema.read_keys(n, s.*member); };
    f.emit = [member, &schema](YAML::Node& n, const S& s) {
      for (const auto& kv : schema.emit(s.*member)) n[kv.first.Scalar()] = kv.second;
    };
    f.validate = [member, &schema](const S& s, const std::string& path) {
      schema.validate(s.*member, path);
    };
    f.reference = [member, &schema](const S& s, const std::string& path,
                                    std::vector<OptionReferenceRow>& rows) {
      schema.append_reference(s.*member, path, rows);
    };
    f.flattened = true;
    fields_.push_back(std::move(f));
    return *this;
  }

  // Modifiers of the field added last.
  // The key must be present; `message` says what is missing ("missing required section ...").
  OptionSchema& required(std::string message) {
    last().required = std::move(message);
    return *this;
  }
  OptionSchema& applies(Applies reason) { return last().applies = std::move(reason), *this; }
  // Emitted only where `keep` holds (read always): sections that only some configs use.
  OptionSchema& emit_if(std::function<bool(const S&)> keep) {
    return last().emit_if = std::move(keep), *this;
  }
  // Parse-time step right after the key is read (e.g. a preset filling other keys' values).
  OptionSchema& after_read(std::function<void(ConfigNode&, S&)> hook) {
    return last().after_read = std::move(hook), *this;
  }
  // The default as the reference shows it, where the struct's own value says less.
  OptionSchema& shown_default(std::string text) {
    return last().shown_default = std::move(text), *this;
  }

  // Defaults that other keys change (a schedule's own σ range): the reference shows, next
  // to each default, the values of `variants` (name, defaults) that differ, except for the
  // key `chosen_by` that selects them.
  OptionSchema& default_variants(std::string chosen_by,
                                 std::vector<std::pair<std::string, S>> variants) {
    variant_key_ = std::move(chosen_by);
    variants_ = std::move(variants);
    return *this;
  }

  // A check across keys, run after every key was read.
  OptionSchema& rule(std::function<void(const S&, const OptionFail&)> check) {
    rules_.push_back(std::move(check));
    return *this;
  }

  // Reads the keys of `n` into `s` (which holds the defaults), checks them, then refuses any
  // key the schema does not know.
  void read(ConfigNode n, S& s) const { read_into(n, s); }
  void read_into(ConfigNode& n, S& s) const {
    read_keys(n, s);
    n.finish();
  }
  // A struct from its defaults and the keys of `root`.
  S parse(ConfigNode& root) const {
    S s{};
    read_into(root, s);
    return s;
  }
  // Loads `path`, applies `overrides` ("a.b=value", as --set does) and parses.
  S load(const std::string& path, const std::vector<std::string>& overrides) const {
    ConfigNode root = ConfigNode::load_file(path);
    for (const auto& o : overrides) root.apply_override(o);
    return parse(root);
  }

  // read_into without the unknown-key check (for flattened members).
  void read_keys(ConfigNode& n, S& s) const {
    for (const Field& f : fields_) {
      const std::string reason = f.applies ? f.applies(s) : std::string();
      if (!reason.empty()) {
        if (n.has(f.key)) n.fail(f.key, reason);
        continue;
      }
      if (!f.required.empty() && !n.has(f.key)) n.fail(f.key, f.required);
      f.read(n, s);
      if (f.problem) {
        const std::string problem = f.problem(s);
        if (!problem.empty()) n.fail(f.key, problem);
      }
      if (f.after_read) f.after_read(n, s);
    }
    const OptionFail fail = [&n](const std::string& key, const std::string& message) {
      n.fail(key, message);
    };
    for (const auto& rule : rules_) rule(s, fail);
  }

  YAML::Node emit(const S& s) const {
    YAML::Node n;
    for (const Field& f : fields_)
      if ((!f.applies || f.applies(s).empty()) && (!f.emit_if || f.emit_if(s))) f.emit(n, s);
    return n;
  }

  // The checks of read() for a struct built in C++: ConfigError "<path>.<key>: <message>".
  void validate(const S& s, const std::string& path) const {
    const auto located = [&path](const std::string& key) {
      return path.empty() ? key : path + "." + key;
    };
    for (const Field& f : fields_) {
      if (f.applies && !f.applies(s).empty()) continue;
      if (f.problem) {
        const std::string problem = f.problem(s);
        if (!problem.empty()) throw ConfigError(located(f.key) + ": " + problem);
      }
      if (f.validate) f.validate(s, f.flattened ? path : located(f.key));
    }
    const OptionFail fail = [&](const std::string& key, const std::string& message) {
      throw ConfigError(located(key) + ": " + message);
    };
    for (const auto& rule : rules_) rule(s, fail);
  }

  // Reference rows of every key under `path`, defaults taken from `s`.
  std::vector<OptionReferenceRow> reference(const S& s, const std::string& path) const {
    std::vector<OptionReferenceRow> rows;
    append_reference(s, path, rows);
    return rows;
  }
  void append_reference(const S& s, const std::string& path,
                        std::vector<OptionReferenceRow>& rows) const {
    for (const Field& f : fields_) {
      const std::string key = f.flattened ? path : path.empty() ? f.key : path + "." + f.key;
      if (f.reference) {
        f.reference(s, key, rows);
        continue;
      }
      std::string value = !f.shown_default.empty() ? f.shown_default : f.value_text(s);
      if (!f.required.empty()) value = "required";
      if (f.key != variant_key_ && f.shown_default.empty()) value += variant_defaults(f, value);
      rows.push_back({key, value, f.valid, f.doc});
    }
  }

 private:
  struct Field {
    std::string key, doc, valid, shown_default;
    std::string required;  // the message when missing; empty: optional
    bool flattened = false;
    std::function<void(ConfigNode&, S&)> read;
    std::function<void(YAML::Node&, const S&)> emit;
    std::function<std::string(const S&)> problem;
    std::function<std::string(const S&)> value_text;
    Applies applies;
    std::function<bool(const S&)> emit_if;
    std::function<void(ConfigNode&, S&)> after_read;
    std::function<void(const S&, const std::string&)> validate;
    std::function<void(const S&, const std::string&, std::vector<OptionReferenceRow>&)> reference;
  };

  static Field base_field(const char* key, std::string doc, std::string valid) {
    Field f;
    f.key = key;
    f.doc = std::move(doc);
    f.valid = std::move(valid);
    return f;
  }
  // " (edm: x, ve: y)" for the variants whose default of `f` differs from `base`.
  std::string variant_defaults(const Field& f, const std::string& base) const {
    std::vector<std::string> differing;
    for (const auto& [name, variant] : variants_) {
      const std::string value = f.value_text(variant);
      if (value != base) differing.push_back(name + ": " + value);
    }
    return differing.empty() ? std::string() : " (" + join(differing) + ")";
  }
  Field& last() {
    if (fields_.empty()) throw std::logic_error("OptionSchema: a field modifier before any field");
    return fields_.back();
  }
  template <class T>
  static void read_value(ConfigNode& n, const char* key, T& value) {
    if constexpr (std::is_same_v<T, uint64_t>) {
      auto signed_value = static_cast<int64_t>(value);
      n.read(key, signed_value);
      const std::string problem =
          checks::int_range<int64_t>(0, std::numeric_limits<int64_t>::max()).problem(signed_value);
      if (n.has(key) && !problem.empty()) n.fail(key, problem);
      value = static_cast<uint64_t>(signed_value);
    } else {
      n.read(key, value);
    }
  }

  std::vector<Field> fields_;
  std::vector<std::function<void(const S&, const OptionFail&)>> rules_;
  std::string variant_key_;
  std::vector<std::pair<std::string, S>> variants_;
};

// The `applies` of keys that only one value of an enum key reads (the enum `selector_key`
// of the same struct): "applies to kind 'volume' only (kind is 'pixels')".
template <class S, class E, size_t N>
std::function<std::string(const S&)> only_for(const char* selector_key, E S::*selector,
                                              const std::array<EnumName<E>, N>& names, E value) {
  return [selector_key, selector, &names, value](const S& s) {
    if (s.*selector == value) return std::string();
    return std::string("applies to ") + selector_key + " '" + enum_name(value, names) + "' only (" +
           selector_key + " is '" + enum_name(s.*selector, names) + "')";
  };
}

// The schema that `Make` builds, built on first use and kept: schemas are immutable, so
// each `*_schema()` accessor returns built_once<its make function>().
template <auto Make>
const auto& built_once() {
  static const auto schema = Make();
  return schema;
}

// Markdown table of reference rows (README.md "Config reference").
std::string option_reference_markdown(const std::vector<OptionReferenceRow>& rows);

}  // namespace diffuse
