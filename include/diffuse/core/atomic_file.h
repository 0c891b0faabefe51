#pragma once
// Atomic file writes: content goes to PATH.tmp in the same folder, then is renamed into
// place, so a reader never sees half a file and a failure leaves the old file untouched.
// (write_text_file_atomic, for text already in memory, is declared in config_node.h.)
#include <functional>
#include <ostream>
#include <string>

namespace diffuse {

// Streams the content through `write` (large files that should not be built in memory
// first); a failed stream or an exception from `write` leaves no file behind.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

}  // namespace diffuse
