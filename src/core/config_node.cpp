#include "diffuse/core/config_node.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace diffuse {
namespace {

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

bool parse_bool(const std::string& s, bool& out) {
  if (s == "true" || s == "True" || s == "TRUE" || s == "yes" || s == "on") {
    out = true;
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE" || s == "no" || s == "off") {
    out = false;
    return true;
  }
  return false;
}

bool parse_int64(const std::string& s, int64_t& out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end != s.c_str() + s.size()) {
    // Accept integral values written in float notation, e.g. 8e5 or 1000.0.
    double d = 0;
    char* dend = nullptr;
    d = std::strtod(s.c_str(), &dend);
    if (dend != s.c_str() + s.size() || !std::isfinite(d) || d != std::floor(d) ||
        std::fabs(d) > 9.0e15)
      return false;
    out = static_cast<int64_t>(d);
    return true;
  }
  out = v;
  return true;
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  if (s == ".inf" || s == "inf") {
    out = std::numeric_limits<double>::infinity();
    return true;
  }
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && !std::isnan(out);
}

}  // namespace

ConfigNode::ConfigNode(YAML::Node node, std::shared_ptr<Source> source, std::string path)
    : node_(std::move(node)), source_(std::move(source)), path_(std::move(path)) {}

ConfigNode ConfigNode::load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot open config file (does it exist?)");
  std::stringstream text;
  text << in.rdbuf();
  return load_string(text.str(), path);
}

ConfigNode ConfigNode::load_string(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                      std::to_string(e.mark.column + 1) + ": invalid YAML: " + e.msg);
  }
  if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  auto src = std::make_shared<Source>();
  src->file = source;
  ConfigNode node(root, src, "");
  if (!root.IsMap())
    throw ConfigError(node.where() + ": expected a mapping of keys at the top level, found " +
                      node.describe(root));
  return node;
}

void ConfigNode::apply_override(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set " + assignment + ": expected key.path=value");
  const std::string key_path = assignment.substr(0, eq);
  const std::string value_text = assignment.substr(eq + 1);
  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("--set " + assignment + ": value is not valid YAML: " + e.msg);
  }
  std::vector<std::string> parts;
  std::stringstream ss(key_path);
  for (std::string part; std::getline(ss, part, '.');) {
    if (part.empty()) throw ConfigError("--set " + assignment + ": empty key in path");
    parts.push_back(part);
  }
  // yaml-cpp's operator[] on non-const nodes returns references into the tree; walk with
  // reset() so each step rebinds the handle instead of assigning through it.
  YAML::Node cur;
  cur.reset(node_);
  std::string prefix;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    prefix += (i ? "." : "") + parts[i];
    YAML::Node next = cur[parts[i]];
    if (!next.IsDefined() || next.IsNull()) {
      cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = cur[parts[i]];
    } else if (!next.IsMap()) {
      throw ConfigError("--set " + assignment + ": '" + prefix +
                        "' is a value, not a section, so it has no key '" + parts[i + 1] + "'");
    }
    cur.reset(next);
  }
  cur[parts.back()] = value;
  source_->overridden.insert(key_path);
}

bool ConfigNode::has(const std::string& key) const {
  return node_.IsMap() && node_[key].IsDefined() && !node_[key].IsNull();
}

std::string ConfigNode::path_of(const std::string& key) const {
  if (key.empty()) return path_;
  return path_.empty() ? key : path_ + "." + key;
}

std::string ConfigNode::where(const std::string& key) const {
  const std::string path = path_of(key);
  if (!path.empty() && source_->overridden.count(path)) return "--set " + path;
  YAML::Mark mark = node_.Mark();
  if (!key.empty() && node_.IsMap()) {
    // yaml-cpp gives marks to values; find the key node itself for the best position.
    for (const auto& kv : node_) {
      if (kv.first.as<std::string>() == key) {
        mark = kv.first.Mark();
        break;
      }
    }
  }
  if (mark.is_null()) return source_->file;
  return source_->file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

void ConfigNode::fail(const std::string& key, const std::string& message) const {
  const std::string path = path_of(key);
  throw ConfigError(where(key) + ": " + (path.empty() ? "" : path + ": ") + message);
}

void ConfigNode::fail_missing(const std::string& key) const {
  throw ConfigError(where() + ": " + (path_.empty() ? "top level" : path_) +
                    ": missing required key '" + key + "'");
}

void ConfigNode::fail_choice(const std::string& key, const std::string& found,
                             const std::vector<std::string>& valid) const {
  fail(key, "unknown value '" + found + "'; valid values: " + join(valid, ", "));
}

std::string ConfigNode::describe(const YAML::Node& node) const {
  switch (node.Type()) {
    case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Null: return "nothing (null)";
    default: return "an undefined value";
  }
}

ConfigNode ConfigNode::child(const std::string& key) {
  used_.insert(key);
  if (!has(key)) return ConfigNode(YAML::Node(YAML::NodeType::Map), source_, path_of(key));
  YAML::Node sub = node_[key];
  if (!sub.IsMap()) fail(key, "expected a mapping of keys, found " + describe(sub));
  return ConfigNode(sub, source_, path_of(key));
}

YAML::Node ConfigNode::scalar_at(const std::string& key, const char* expected) {
  used_.insert(key);
  YAML::Node v = node_[key];
  if (!v.IsScalar()) fail(key, std::string("expected ") + expected + ", found " + describe(v));
  return v;
}

void ConfigNode::read(const std::string& key, bool& value) {
  if (!has(key)) { used_.insert(key); return; }
  auto v = scalar_at(key, "true or false");
  if (!parse_bool(v.Scalar(), value)) fail(key, "expected true or false, found '" + v.Scalar() + "'");
}

void ConfigNode::read(const std::string& key, int64_t& value) {
  if (!has(key)) { used_.insert(key); return; }
  auto v = scalar_at(key, "an integer");
  if (!parse_int64(v.Scalar(), value)) fail(key, "expected an integer, found '" + v.Scalar() + "'");
}

void ConfigNode::read(const std::string& key, int& value) {
  int64_t wide = value;
  read(key, wide);
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max())
    fail(key, "integer " + std::to_string(wide) + " is out of range");
  value = static_cast<int>(wide);
}

void ConfigNode::read(const std::string& key, double& value) {
  if (!has(key)) { used_.insert(key); return; }
  auto v = scalar_at(key, "a number");
  if (!parse_double(v.Scalar(), value)) fail(key, "expected a number, found '" + v.Scalar() + "'");
}

void ConfigNode::read(const std::string& key, std::string& value) {
  if (!has(key)) { used_.insert(key); return; }
  value = scalar_at(key, "a string").Scalar();
}

namespace {
template <class T, class Parse>
void read_list(ConfigNode& self, const YAML::Node& node, const std::string& key,
               std::vector<T>& value, const char* expected, Parse parse) {
  if (!node.IsSequence())
    self.fail(key, std::string("expected a list of ") + expected + ", found " +
                       (node.IsScalar() ? "'" + node.Scalar() + "'" : std::string("a mapping")));
  std::vector<T> out;
  for (size_t i = 0; i < node.size(); ++i) {
    T item{};
    if (!node[i].IsScalar() || !parse(node[i].Scalar(), item))
      self.fail(key, "item " + std::to_string(i) + ": expected " + expected + ", found " +
                         (node[i].IsScalar() ? "'" + node[i].Scalar() + "'" : std::string("a collection")));
    out.push_back(item);
  }
  value = std::move(out);
}
}  // namespace

void ConfigNode::read(const std::string& key, std::vector<int>& value) {
  used_.insert(key);
  if (!has(key)) return;
  read_list<int>(*this, node_[key], key, value, "integers", [](const std::string& s, int& out) {
    int64_t wide = 0;
    if (!parse_int64(s, wide) || wide < std::numeric_limits<int>::min() ||
        wide > std::numeric_limits<int>::max())
      return false;
    out = static_cast<int>(wide);
    return true;
  });
}

void ConfigNode::read(const std::string& key, std::vector<double>& value) {
  used_.insert(key);
  if (!has(key)) return;
  read_list<double>(*this, node_[key], key, value, "numbers", parse_double);
}

void ConfigNode::read(const std::string& key, std::vector<std::string>& value) {
  used_.insert(key);
  if (!has(key)) return;
  read_list<std::string>(*this, node_[key], key, value, "strings",
                         [](const std::string& s, std::string& out) {
                           out = s;
                           return true;
                         });
}

void ConfigNode::finish() const {
  if (!node_.IsMap()) return;
  std::vector<std::string> valid(used_.begin(), used_.end());
  for (const auto& kv : node_) {
    const std::string key = kv.first.as<std::string>();
    if (used_.count(key)) continue;
    throw ConfigError(where(key) + ": unknown key '" + path_of(key) + "'; valid keys" +
                      (path_.empty() ? "" : " in '" + path_ + "'") + ": " + join(valid, ", "));
  }
}

std::string format_double(double value) {
  if (std::isinf(value)) return value > 0 ? ".inf" : "-.inf";
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buf, sizeof(buf), "%.1f", value);
    return buf;
  }
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  std::string s(buf);
  // Keep a decimal point or exponent so the value reads back as a number, not an integer.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

void emit_value(YAML::Node& node, const std::string& key, double value) {
  node[key] = format_double(value);
}

void emit_value(YAML::Node& node, const std::string& key, const std::vector<double>& value) {
  YAML::Node list(YAML::NodeType::Sequence);
  for (double v : value) list.push_back(format_double(v));
  list.SetStyle(YAML::EmitterStyle::Flow);
  node[key] = list;
}

std::string to_yaml_string(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return std::string(out.c_str()) + "\n";
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const fs::path tmp = target.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(tmp.string() + ": cannot open for writing");
    out << text;
    out.flush();
    if (!out) throw Error(tmp.string() + ": write failed (disk full?)");
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp);
    throw Error(path + ": cannot rename temp file into place: " + ec.message());
  }
}

}  // namespace diffuse
