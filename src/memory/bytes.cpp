#include "memory/bytes.h"

#include <cstdio>
#include <iterator>

namespace heinfer::memory {

std::string format_bytes(std::int64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  const bool negative = bytes < 0;
  // Magnitude as unsigned: also correct for INT64_MIN.
  const std::uint64_t n = negative ? 0 - static_cast<std::uint64_t>(bytes) : static_cast<std::uint64_t>(bytes);
  char buf[48];
  if (n < 1024) {
    std::snprintf(buf, sizeof buf, "%s%llu B", negative ? "-" : "", static_cast<unsigned long long>(n));
    return buf;
  }
  double v = static_cast<double>(n) / 1024.0;
  std::size_t unit = 0;
  while (v >= 1024.0 && unit + 1 < std::size(kUnits)) {
    v /= 1024.0;
    ++unit;
  }
  std::snprintf(buf, sizeof buf, "%s%.2f %s", negative ? "-" : "", v, kUnits[unit]);
  return buf;
}

}  // namespace heinfer::memory
