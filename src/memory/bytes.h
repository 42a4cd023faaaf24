// Byte counts for people: one format for the library's messages and the command-line tool.
#pragma once

#include <cstdint>
#include <string>

namespace heinfer::memory {

/// `bytes` in binary units: "512 B" below 1 KiB, else two decimals of the largest of
/// KiB, MiB, GiB, TiB (powers of 1024) that is at least 1, e.g. "1.00 MiB", "2.50 GiB".
/// A negative count keeps its sign. Does not throw (beyond std::bad_alloc).
std::string format_bytes(std::int64_t bytes);

}  // namespace heinfer::memory
