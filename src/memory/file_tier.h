// The secondary tier of a resumable run: a named file, memory-mapped (MAP_SHARED), with
// its own extent allocator, so that a checkpoint can reference the ciphertexts already
// in it by offset instead of copying them (runtime/checkpoint.h).
//
// memkind's PMEM heap (memory/secondary_tier.h) cannot serve here: its file has no name
// and its allocator's state is lost with the process. This file keeps the same
// behaviour otherwise: file-backed pages that the kernel writes back and drops under
// memory pressure (never anonymous memory), served from the page cache when resident.
//
// Layout: one header granule (magic "HEINFER-TIER-1", a random 16-byte identifier),
// then extents of whole granules (4 KiB), allocated best fit and coalesced when freed.
// Extents still free 5 s after their release are punched (FALLOC_FL_PUNCH_HOLE, as
// memkind's heap does after a decay time): their dirty pages are dropped instead of
// written back, the scarce resource on an SSD, while extents reused quickly keep their
// pages mapped. Blocks are
// reserved with posix_fallocate when an extent is allocated, so a full disk is a
// std::bad_alloc at allocation, never a SIGBUS at a later write.
//
// Crash consistency (the copy-on-write rule of log-structured stores, Rosenblum and
// Ousterhout, ACM TOCS 10(1), 1992): an extent allocated before the last commit() is
// referenced by the committed checkpoint while it lives; when freed it is quarantined,
// not reused, until the next commit(). So the extents a committed checkpoint names are
// never overwritten before a newer checkpoint replaces it. The cost is tier space: the
// bytes freed since the last checkpoint that were alive at it.
//
// Threading: allocation and deallocation are thread-safe; sync(), commit() and claim()
// are called by one thread while no other allocates (between steps).
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace heinfer::memory {

class FileTier final : public std::pmr::memory_resource {
 public:
  static constexpr std::int64_t kGranule = 4096;  ///< bytes; extents are whole granules

  /// Creates `path` (must not exist; mode 0600). `max_bytes` limits the file (0: the
  /// filesystem's free space). Throws std::runtime_error naming the file and the reason.
  static std::unique_ptr<FileTier> create(const std::filesystem::path& path, std::int64_t max_bytes);
  /// Opens a tier file made by create() whose identifier is `id_hex` (32 hex digits):
  /// every extent is free until claim()ed. Throws std::runtime_error when it is missing,
  /// not a tier file, of another identifier or larger than `max_bytes` (when set).
  static std::unique_ptr<FileTier> open(const std::filesystem::path& path, const std::string& id_hex,
                                        std::int64_t max_bytes);
  ~FileTier() override;
  FileTier(const FileTier&) = delete;
  FileTier& operator=(const FileTier&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::string& id() const { return id_; }
  /// Bytes of the file (the high-water mark of the extents, plus the header).
  std::int64_t file_bytes() const;
  /// Bytes freed since the last commit() that are not reusable before the next.
  std::int64_t quarantined_bytes() const;
  /// Whether p points into the mapping, and its offset in the file (std::invalid_argument
  /// otherwise).
  bool contains(const void* p) const;
  std::int64_t offset_of(const void* p) const;

  /// Makes everything written to the mapping so far durable (msync + fsync). Throws
  /// std::runtime_error.
  void sync();
  /// A checkpoint referencing the live extents has committed: the extents quarantined
  /// before it become reusable, and the live ones are quarantined when freed from now on.
  void commit();
  /// For a resumed run: the extent at `offset` of `bytes` holds data of the committed
  /// checkpoint; the next allocation of exactly `bytes` by this thread returns it (so a
  /// ciphertext can be rebuilt over its words in place). The extent counts as live
  /// before the last commit. Throws std::runtime_error when the extent is misaligned,
  /// not inside the file, overlaps a claimed one, or a claim is already pending.
  void* claim(std::int64_t offset, std::int64_t bytes);

  /// Test hook for crash safety: allocation number `k` (1-based, claims not counted)
  /// fills the first half of its extent with a pattern, as a write cut short, and kills
  /// the process (SIGKILL); 0: never.
  void set_fault_in_write(std::int64_t k) { fault_allocation_ = k; }

 private:
  FileTier(std::filesystem::path path, int fd, std::int64_t reserve, std::int64_t end, std::string id);
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

  void insert_free(std::int64_t off, std::int64_t len);  ///< coalesces with neighbours
  void take_free(std::int64_t off, std::int64_t len);    ///< removes [off, off + len) from a free extent
  void release(std::int64_t off, std::int64_t len);      ///< punches the extent's pages, then frees it

  std::filesystem::path path_;
  int fd_ = -1;
  char* base_ = nullptr;
  std::int64_t reserve_ = 0;  ///< bytes of address space mapped
  std::string id_;

  mutable std::mutex mu_;
  std::int64_t end_ = 0;  ///< file size
  std::int64_t allocations_ = 0, fault_allocation_ = 0;  ///< set_fault_in_write
  std::uint64_t epoch_ = 1;
  struct Extent {
    std::int64_t len;
    std::uint64_t epoch;  ///< commit() count when allocated (0: claimed)
  };
  std::unordered_map<std::int64_t, Extent> live_;
  std::map<std::int64_t, std::int64_t> free_by_offset_;
  std::set<std::pair<std::int64_t, std::int64_t>> free_by_length_;  ///< (len, off)
  std::vector<std::pair<std::int64_t, std::int64_t>> quarantine_;   ///< (off, len)
  struct Released {
    double when;  ///< steady-clock seconds
    std::int64_t off, len;
  };
  std::deque<Released> released_;  ///< extents to punch if still free a while later
  std::int64_t quarantined_ = 0;
  std::int64_t claim_offset_ = -1, claim_bytes_ = 0;
  std::thread::id claim_thread_;
};

}  // namespace heinfer::memory
