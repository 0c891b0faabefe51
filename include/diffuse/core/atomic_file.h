#pragma once
// Atomic file writes: content goes to PATH.tmp in the same folder, then is renamed into
// place, so a reader never sees half a file and a failure leaves the old file untouched.
// Every writer of a finished file goes through write_file_atomic_at, so the temp name, the
// clean-up and the rename live in one place.
#include <functional>
#include <ostream>
#include <string>

namespace diffuse {

// For writers that need a file name rather than a stream (torch archives, file copies):
// `write` fills the temp file whose path it is given. An exception from `write` removes the
// temp file and propagates; a failed rename throws Error "PATH: cannot rename <temp_noun>
// into place: <reason>". Parent folders of `path` are created.
void write_file_atomic_at(const std::string& path,
                          const std::function<void(const std::string& temp_path)>& write,
                          const std::string& temp_noun = "temp file");

// Streams the content through `write` (large files that should not be built in memory
// first); a failed stream or an exception from `write` leaves no file behind.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

// Writes `text` (any bytes) to `path` atomically.
void write_text_file_atomic(const std::string& path, const std::string& text);

// Copies `from` onto `to` atomically: a reader of `to` sees the old file or the whole copy.
void copy_file_atomic(const std::string& from, const std::string& to);

}  // namespace diffuse
