// Writing output files atomically: a temporary file in the same directory, written and
// fsync'ed, then rename(2) over the target and the directory fsync'ed, so a reader (or a
// crash, or a power loss) never sees a partial file.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string_view>

namespace heinfer::runtime {

/// Writes `bytes` to `path` atomically, the file created with `mode` (before the umask;
/// 0600 for secrets: the temporary never has wider permissions). Throws
/// std::runtime_error naming the file and the system's reason when the temporary cannot
/// be created, written, flushed or renamed (the temporary is removed).
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes, mode_t mode = 0644);

/// Checks, before a long computation, that `path` can be written: its directory exists
/// and is writable, and it is not a directory. Throws std::runtime_error with the reason.
void check_output_path(const std::filesystem::path& path);

}  // namespace heinfer::runtime
