// memory::format_bytes and the /proc readers of memory/process_memory.h.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "memory/bytes.h"
#include "memory/process_memory.h"

namespace heinfer::memory {
namespace {

TEST(FormatBytes, BinaryUnits) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.00 KiB");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(std::int64_t{1} << 20), "1.00 MiB");
  EXPECT_EQ(format_bytes(179980000), "171.64 MiB");
  EXPECT_EQ(format_bytes(std::int64_t{5} << 29), "2.50 GiB");
  EXPECT_EQ(format_bytes(std::int64_t{3} << 40), "3.00 TiB");
  EXPECT_EQ(format_bytes(std::int64_t{2048} << 40), "2048.00 TiB");  // TiB is the largest unit
  EXPECT_EQ(format_bytes(-(std::int64_t{1} << 30)), "-1.00 GiB");
  EXPECT_EQ(format_bytes(-5), "-5 B");
  EXPECT_EQ(format_bytes(std::numeric_limits<std::int64_t>::min()), "-8388608.00 TiB");
}

TEST(ProcessMemory, StatusFieldsInBytes) {
  const std::int64_t rss = proc_status_bytes("VmRSS");
  EXPECT_GT(rss, 0);
  EXPECT_EQ(rss % 1024, 0);  // the kernel reports KiB
  EXPECT_GE(proc_status_bytes("VmHWM"), rss);  // the peak
  EXPECT_GT(proc_status_bytes("RssAnon"), 0);
  // Touching 64 MiB of heap raises RSS by about that much.
  std::vector<char> block(std::size_t{64} << 20, 1);
  EXPECT_GT(proc_status_bytes("VmRSS"), rss + (std::int64_t{48} << 20));
  EXPECT_EQ(block[12345], 1);
  // Unknown fields, prefixes of fields and the colon form read as 0.
  EXPECT_EQ(proc_status_bytes("NoSuchField"), 0);
  EXPECT_EQ(proc_status_bytes("VmRS"), 0);
  EXPECT_EQ(proc_status_bytes("VmRSS:"), 0);
}

TEST(ProcessMemory, MemAvailable) {
  const std::int64_t b = mem_available_bytes();
  EXPECT_GT(b, std::int64_t{1} << 20);
  EXPECT_EQ(b % 1024, 0);
}

}  // namespace
}  // namespace heinfer::memory
