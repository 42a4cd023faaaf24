#include "memory/secondary_tier.h"

#include <memkind.h>

#include <new>
#include <stdexcept>
#include <string>

namespace heinfer::memory {

SecondaryTier::SecondaryTier(const std::filesystem::path& dir, std::int64_t max_bytes) : dir_(dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw std::runtime_error("secondary tier: '" + dir.string() + "' is not a directory");
  }
  if (max_bytes < 0) throw std::runtime_error("secondary tier: negative size limit");
  const int err = memkind_create_pmem(dir.c_str(), static_cast<std::size_t>(max_bytes), &kind_);
  if (err != 0) {
    char msg[MEMKIND_ERROR_MESSAGE_SIZE] = {};
    memkind_error_message(err, msg, sizeof msg);
    throw std::runtime_error("secondary tier: cannot create a memkind PMEM heap in '" + dir.string() +
                             "': " + msg);
  }
}

SecondaryTier::~SecondaryTier() {
  if (kind_) memkind_destroy_kind(kind_);
}

void* SecondaryTier::do_allocate(std::size_t bytes, std::size_t alignment) {
  void* p = nullptr;
  if (bytes == 0) bytes = 1;
  if (alignment <= alignof(std::max_align_t)) {
    p = memkind_malloc(kind_, bytes);
  } else if (memkind_posix_memalign(kind_, &p, alignment, bytes) != 0) {
    p = nullptr;
  }
  if (!p) throw std::bad_alloc();
  bytes_.fetch_add(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
  return p;
}

void SecondaryTier::do_deallocate(void* p, std::size_t bytes, std::size_t /*alignment*/) {
  if (!p) return;
  memkind_free(kind_, p);
  bytes_.fetch_sub(static_cast<std::int64_t>(bytes == 0 ? 1 : bytes), std::memory_order_relaxed);
}

}  // namespace heinfer::memory
