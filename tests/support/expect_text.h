#pragma once
// Assertions on error messages and command output shared by the tests.
#include <gtest/gtest.h>

#include <string>

namespace diffuse::test {

// The message of the `E` that `fn` throws; "" when it throws nothing. Any other exception
// propagates, so the test fails with its message.
template <class E, class Fn>
std::string error_message(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

}  // namespace diffuse::test

// Expects `part` inside `text`, printing the whole text when it is not there.
#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "in: " << (text)

namespace diffuse::test {

// Lines of `text` (its newline characters).
inline size_t line_count(const std::string& text) {
  size_t lines = 0;
  for (char ch : text) lines += ch == '\n';
  return lines;
}

}  // namespace diffuse::test
