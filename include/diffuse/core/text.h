#pragma once
// Text helpers for messages: lists joined with a separator ("valid samplers: a, b, c") and
// name tables (the sampler, operator, preset and format tables) searched by name, so that
// every "unknown X; valid Xs: ..." message is built the same way.
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

namespace diffuse {

// "a, b, c": `items` with `sep` between them; "" for none.
std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");

namespace text_detail {
inline std::string to_text(const std::string& text) { return text; }
inline std::string to_text(const char* text) { return text; }
template <class T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
std::string to_text(T value) {
  return std::to_string(value);
}
}  // namespace text_detail

// `to_text(item)` of each item of a range, with `sep` between them.
template <class Range, class ToText>
std::string join(const Range& items, const std::string& sep, ToText&& to_text) {
  std::string out;
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += sep;
    out += to_text(item);
    first = false;
  }
  return out;
}

// A range of strings or numbers (std::to_string), with `sep` between them.
template <class Range>
std::string join(const Range& items, const std::string& sep) {
  return join(items, sep, [](const auto& item) { return text_detail::to_text(item); });
}

// The entry of a name table (any range of entries with a `name` field) called `name`;
// nullptr when there is none.
template <class Table>
auto find_by_name(const Table& table, const std::string& name) -> decltype(&*std::begin(table)) {
  for (const auto& entry : table)
    if (name == entry.name) return &entry;
  return nullptr;
}

// The names of a table's entries, in table order; only those `keep` accepts.
template <class Table, class Keep>
std::vector<std::string> names_of(const Table& table, Keep&& keep) {
  std::vector<std::string> names;
  for (const auto& entry : table)
    if (keep(entry)) names.emplace_back(entry.name);
  return names;
}
template <class Table>
std::vector<std::string> names_of(const Table& table) {
  return names_of(table, [](const auto&) { return true; });
}

}  // namespace diffuse
