// Text output of the session operations to a stream the front end chooses (the CLI:
// stdout; the Python package: none).
#pragma once

#include <cstdarg>
#include <cstdio>

namespace heinfer::session {

/// printf to `f`, flushed, unless `f` is null.
[[gnu::format(printf, 2, 3)]] inline void say(std::FILE* f, const char* format, ...) {
  if (!f) return;
  va_list args;
  va_start(args, format);
  std::vfprintf(f, format, args);
  va_end(args);
  std::fflush(f);
}

}  // namespace heinfer::session
