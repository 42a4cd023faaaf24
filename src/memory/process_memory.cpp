#include "memory/process_memory.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

namespace heinfer::memory {
namespace {

/// The "FIELD:   N kB" line of a /proc file: N * 1024, or -1 if the file or field is missing.
std::int64_t kib_field(const char* path, std::string_view field) {
  std::FILE* f = std::fopen(path, "r");
  if (!f) return -1;
  char line[256];
  long long kib = -1;
  while (std::fgets(line, sizeof line, f)) {
    const std::string_view l(line);
    if (l.size() > field.size() && l.starts_with(field) && l[field.size()] == ':') {
      if (std::sscanf(line + field.size() + 1, "%lld", &kib) != 1) kib = -1;
      break;
    }
  }
  std::fclose(f);
  return kib < 0 ? -1 : static_cast<std::int64_t>(kib) * 1024;
}

}  // namespace

std::int64_t proc_status_bytes(std::string_view field) {
  const std::int64_t b = kib_field("/proc/self/status", field);
  return b < 0 ? 0 : b;
}

std::int64_t mem_available_bytes() {
  const std::int64_t b = kib_field("/proc/meminfo", "MemAvailable");
  if (b < 0) throw std::runtime_error("cannot read MemAvailable from /proc/meminfo");
  return b;
}

void configure_allocator_for_ciphertexts() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

std::size_t release_pages(void* p, std::size_t bytes) {
  static const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t first = (begin + page - 1) / page * page, last = (begin + bytes) / page * page;
  if (bytes == 0 || last <= first) return 0;
  if (madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED) != 0) return 0;
  return last - first;
}

}  // namespace heinfer::memory
