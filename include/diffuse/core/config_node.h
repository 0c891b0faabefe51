#pragma once
// Strict YAML reading (DESIGN §2). A ConfigNode is one mapping of a config file; parse
// functions `read` the keys they know into option structs that already hold defaults, then
// `finish()` rejects every key nobody read, naming file:line:column, the key path and the
// valid keys. Wrong types name the expected type and the value found.
#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "diffuse/core/error.h"
#include "diffuse/core/text.h"

namespace diffuse {

// A name ↔ enum value table, used to read and emit enum-valued keys.
template <class E>
struct EnumName {
  const char* name;
  E value;
};

class ConfigNode {
 public:
  // Parses a YAML file (throws ConfigError naming the file on a missing file or bad syntax).
  static ConfigNode load_file(const std::string& path);
  // Parses YAML text; `source` names it in messages (e.g. "<string>" or a checkpoint path).
  static ConfigNode load_string(const std::string& text, const std::string& source);

  // Applies `a.b.c=value` overrides to the tree before parsing; the value is read as YAML
  // (so `--set model.channel_mult=[1,2,2]` works). Messages about such keys say "--set a.b.c".
  void apply_override(const std::string& assignment);

  // Sub-mapping `key` (marked as read). A missing key gives an empty node that reads nothing,
  // so every option keeps its default. A key present but not a mapping is an error.
  ConfigNode child(const std::string& key);
  bool has(const std::string& key) const;

  // Reads `key` into `value` if present; otherwise leaves the default in place.
  void read(const std::string& key, bool& value);
  void read(const std::string& key, int& value);
  void read(const std::string& key, int64_t& value);
  void read(const std::string& key, double& value);
  void read(const std::string& key, std::string& value);
  void read(const std::string& key, std::vector<int>& value);
  void read(const std::string& key, std::vector<double>& value);
  void read(const std::string& key, std::vector<std::string>& value);

  template <class E, size_t N>
  void read_enum(const std::string& key, E& value, const std::array<EnumName<E>, N>& table) {
    if (!has(key)) return;
    std::string name;
    read(key, name);
    const EnumName<E>* entry = find_by_name(table, name);
    if (entry == nullptr) fail_choice(key, name, names_of(table));
    value = entry->value;
  }

  // Like read(), but the key must be present.
  template <class T>
  void require(const std::string& key, T& value) {
    if (!has(key)) fail_missing(key);
    read(key, value);
  }

  // Throws ConfigError if the mapping holds a key that no read/child call asked for.
  void finish() const;

  // "file:line:column" of this node (or of `key` inside it), for messages.
  std::string where(const std::string& key = "") const;
  // Dotted path of `key` inside the file, e.g. "train.lr".
  std::string path_of(const std::string& key) const;

  // Throws a ConfigError located at `key`: "<where>: <path>: <message>".
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

  const YAML::Node& yaml() const { return node_; }

 private:
  struct Source {
    std::string file;
    std::set<std::string> overridden;  // dotted paths set by --set
  };
  ConfigNode(YAML::Node node, std::shared_ptr<Source> source, std::string path);

  YAML::Node scalar_at(const std::string& key, const char* expected);
  std::string describe(const YAML::Node& node) const;
  [[noreturn]] void fail_missing(const std::string& key) const;
  [[noreturn]] void fail_choice(const std::string& key, const std::string& found,
                                const std::vector<std::string>& valid) const;

  YAML::Node node_;
  std::shared_ptr<Source> source_;
  std::string path_;
  std::set<std::string> used_;
};

// Emitting: option structs write themselves into a YAML::Node with these helpers, so that
// numbers use the shortest text that reads back to the same double.
std::string format_double(double value);
void emit_value(YAML::Node& node, const std::string& key, double value);
void emit_value(YAML::Node& node, const std::string& key, const std::vector<double>& value);
template <class T>
void emit_value(YAML::Node& node, const std::string& key, const T& value) {
  node[key] = value;
}
template <class E, size_t N>
void emit_enum(YAML::Node& node, const std::string& key, E value,
               const std::array<EnumName<E>, N>& table) {
  for (const auto& entry : table) {
    if (entry.value == value) {
      node[key] = std::string(entry.name);
      return;
    }
  }
  throw std::logic_error("emit_enum: value missing from the name table of " + key);
}
template <class E, size_t N>
const char* enum_name(E value, const std::array<EnumName<E>, N>& table) {
  for (const auto& entry : table)
    if (entry.value == value) return entry.name;
  return "?";
}

// YAML text of a node with block style, as written to config.yaml files.
std::string to_yaml_string(const YAML::Node& node);

}  // namespace diffuse
