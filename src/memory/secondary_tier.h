// The secondary memory tier: a persistent-memory heap on a directory through memkind's
// PMEM kind (memkind_create_pmem, Debian's libmemkind). On a DAX filesystem (Optane in
// app-direct mode) the pages are real persistent memory; elsewhere memkind backs the
// heap with a temporary, already-unlinked file in the directory, so the pages are
// file-backed (SSD) and the kernel writes them back and drops them under memory
// pressure: they never count as anonymous memory. Nothing is left behind in the
// directory, even after a crash (the file has no name).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory_resource>

struct memkind;

namespace heinfer::memory {

class SecondaryTier final : public std::pmr::memory_resource {
 public:
  /// Creates the heap in `dir` (must exist and be writable), of at most `max_bytes`
  /// (0: limited only by the filesystem). Throws std::runtime_error naming the directory
  /// and memkind's reason when it cannot be created.
  SecondaryTier(const std::filesystem::path& dir, std::int64_t max_bytes = 0);
  ~SecondaryTier() override;
  SecondaryTier(const SecondaryTier&) = delete;
  SecondaryTier& operator=(const SecondaryTier&) = delete;

  const std::filesystem::path& directory() const { return dir_; }
  /// Bytes currently allocated from the tier (as requested, not rounded to pages).
  std::int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  /// Throws std::bad_alloc when the heap is full (or the filesystem is).
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

  std::filesystem::path dir_;
  struct memkind* kind_ = nullptr;
  std::atomic<std::int64_t> bytes_{0};
};

}  // namespace heinfer::memory
