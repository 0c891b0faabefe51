#include "diffuse/core/config_node.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "diffuse/core/text.h"

namespace diffuse {
namespace {

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

// A finite number; NaN and infinities (".inf", "1e400") are refused, since no key means one.
bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(out);
}

// The 1-based line and column of byte `offset` of `text`.
std::string line_column(const std::string& text, size_t offset) {
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return std::to_string(line) + ":" + std::to_string(column);
}

// Offset of the first byte that is not part of well-formed UTF-8, or npos.
size_t first_invalid_utf8(const std::string& text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  for (size_t i = 0; i < n;) {
    const unsigned char lead = bytes[i];
    size_t length = 0;
    uint32_t code = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code = lead & 0x1Fu;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code = lead & 0x0Fu;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code = lead & 0x07u;
    } else {
      return i;
    }
    if (i + length > n) return i;
    for (size_t k = 1; k < length; ++k) {
      if ((bytes[i + k] & 0xC0) != 0x80) return i;
      code = (code << 6) | (bytes[i + k] & 0x3Fu);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr uint32_t kSmallest[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < kSmallest[length] || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return i;
    i += length;
  }
  return std::string::npos;
}

std::string mark_text(const std::string& source, const YAML::Mark& mark) {
  return source + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

// yaml-cpp accepts what a config must not hold: it keeps both entries of a duplicated key
// (lookups return the first, iteration sees both) and takes lists or mappings as keys.
void check_keys(const YAML::Node& node, const std::string& source, const std::string& path) {
  if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i)
      check_keys(node[i], source, path + "[" + std::to_string(i) + "]");
    return;
  }
  if (!node.IsMap()) return;
  std::map<std::string, YAML::Mark> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar())
      throw ConfigError(mark_text(source, kv.first.Mark()) + ": " + (path.empty() ? "top level" : path) +
                        ": a key must be a plain name, found " +
                        (kv.first.IsSequence() ? "a list" : kv.first.IsMap() ? "a mapping" : "nothing"));
    const std::string key = kv.first.Scalar();
    const std::string key_path = path.empty() ? key : path + "." + key;
    const auto [it, fresh] = seen.emplace(key, kv.first.Mark());
    if (!fresh)
      throw ConfigError(mark_text(source, kv.first.Mark()) + ": " + key_path + ": duplicate key (first given at line " +
                        std::to_string(it->second.line + 1) + "); each key may appear once");
    check_keys(kv.second, source, key_path);
  }
}

// Parses one YAML document strictly (see load_string); `source` names it in messages.
YAML::Node parse_document(const std::string& text, const std::string& source) {
  if (const size_t bad = first_invalid_utf8(text); bad != std::string::npos) {
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02X", static_cast<unsigned char>(text[bad]));
    throw ConfigError(source + ":" + line_column(text, bad) + ": invalid UTF-8 (byte " + byte +
                      "); save the file as UTF-8");
  }
  // yaml-cpp 0.7 ends a quoted scalar left open at a line break before the end of the input
  // without an error, swallowing the rest of the file into one string (`name: "abc` then a
  // newline parses as name = "abc "). Without the trailing white space it reports the open
  // quote, and no value of our schema ends in white space.
  const size_t last = text.find_last_not_of(" \t\r\n");
  const std::string trimmed = last == std::string::npos ? std::string() : text.substr(0, last + 1);
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(trimmed);
  } catch (const YAML::Exception& e) {
    throw ConfigError(mark_text(source, e.mark) + ": invalid YAML: " + e.msg);
  }
  if (documents.size() > 1)
    throw ConfigError(mark_text(source, documents[1].Mark()) + ": the file holds " +
                      std::to_string(documents.size()) +
                      " YAML documents (separated by ---); a config is one document");
  YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
  check_keys(root, source, "");
  return root;
}

}  // namespace

ConfigNode::ConfigNode(YAML::Node node, std::shared_ptr<Source> source, std::string path)
    : node_(std::move(node)), source_(std::move(source)), path_(std::move(path)) {}

ConfigNode ConfigNode::load_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) throw ConfigError(path + ": config file not found");
  if (fs::is_directory(status)) throw ConfigError(path + ": is a folder, not a config file");
  // A FIFO or device would block or never end; configs are plain files.
  if (!fs::is_regular_file(status)) throw ConfigError(path + ": is not a regular file, so not a config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open the config file for reading (permissions?)");
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path + ": cannot read the config file");
  return load_string(text.str(), path);
}

ConfigNode ConfigNode::load_string(const std::string& text, const std::string& source) {
  YAML::Node root = parse_document(text, source);
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
    value = parse_document(value_text, "--set " + key_path);
  } catch (const ConfigError& e) {
    throw ConfigError("--set " + assignment + ": value is not valid: " + e.what());
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
      if (kv.first.Scalar() == key) {
        mark = kv.first.Mark();
        break;
      }
    }
  }
  if (mark.is_null()) {
    // Sections that only a --set created have no position in the file: blame the --set.
    for (const auto& overridden : source_->overridden)
      if (overridden.rfind(path + ".", 0) == 0) return "--set " + overridden;
    return source_->file;
  }
  return mark_text(source_->file, mark);
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
  if (!parse_int64(v.Scalar(), value)) {
    const std::string& text = v.Scalar();
    const bool digits = !text.empty() && text.find_first_not_of("+-0123456789") == std::string::npos;
    fail(key, digits ? "integer '" + text + "' does not fit in 64 bits"
                     : "expected an integer, found '" + text + "'");
  }
}

void ConfigNode::read(const std::string& key, int& value) {
  int64_t wide = value;
  read(key, wide);
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max())
    fail(key, "integer " + std::to_string(wide) + " does not fit in 32 bits (|value| < 2^31)");
  value = static_cast<int>(wide);
}

void ConfigNode::read(const std::string& key, double& value) {
  if (!has(key)) { used_.insert(key); return; }
  auto v = scalar_at(key, "a number");
  if (!parse_double(v.Scalar(), value))
    fail(key, "expected a finite number, found '" + v.Scalar() + "'" +
                  (std::isinf(value) ? " (infinite)" : std::isnan(value) ? " (not a number)" : ""));
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
    const std::string key = kv.first.Scalar();
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

}  // namespace diffuse
