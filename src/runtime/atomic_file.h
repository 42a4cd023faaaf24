// Writing output files atomically: a temporary file in the same directory, flushed,
// then rename(2) over the target, so a reader (or a crash) never sees a partial file.
#pragma once

#include <filesystem>
#include <string_view>

namespace heinfer::runtime {

/// Writes `bytes` to `path` atomically. Throws std::runtime_error naming the file when
/// the temporary cannot be created, written or renamed (the temporary is removed).
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

}  // namespace heinfer::runtime
