#include "memory/file_tier.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>

namespace heinfer::memory {
namespace {

namespace fs = std::filesystem;
constexpr char kMagic[16] = "HEINFER-TIER-1";
constexpr std::int64_t kIdBytes = 16;
constexpr std::int64_t kGrowBytes = std::int64_t{64} << 20;  ///< the file grows by at least this
constexpr std::int64_t kUnlimited = std::int64_t{1} << 42;   ///< address space when nothing limits it

constexpr double kPunchDelaySeconds = 5;  ///< the kernel writes dirty pages back after 30 s

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::int64_t round_up(std::int64_t b) { return (b + FileTier::kGranule - 1) / FileTier::kGranule * FileTier::kGranule; }

[[noreturn]] void fail(const fs::path& p, const std::string& what) {
  throw std::runtime_error("tier file '" + p.string() + "': " + what);
}

std::int64_t address_space(const fs::path& p, std::int64_t max_bytes, std::int64_t size) {
  if (max_bytes > 0) return round_up(max_bytes);
  struct statvfs v {};
  if (::statvfs(p.parent_path().empty() ? "." : p.parent_path().c_str(), &v) != 0) return kUnlimited;
  const auto free_bytes = static_cast<std::int64_t>(std::min<unsigned long long>(
      static_cast<unsigned long long>(v.f_bavail) * v.f_frsize, static_cast<unsigned long long>(kUnlimited)));
  return round_up(std::min(kUnlimited, size + free_bytes));
}

}  // namespace

FileTier::FileTier(fs::path path, int fd, std::int64_t reserve, std::int64_t end, std::string id)
    : path_(std::move(path)), fd_(fd), reserve_(reserve), id_(std::move(id)), end_(end) {
  void* m = ::mmap(nullptr, static_cast<std::size_t>(reserve_), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                   fd_, 0);
  if (m == MAP_FAILED) {
    const std::string why = std::strerror(errno);
    ::close(fd_);
    fail(path_, "cannot map it: " + why);
  }
  base_ = static_cast<char*>(m);
  if (end_ > kGranule) insert_free(kGranule, end_ - kGranule);
}

std::unique_ptr<FileTier> FileTier::create(const fs::path& path, std::int64_t max_bytes) {
  if (max_bytes < 0) fail(path, "negative size limit");
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) fail(path, std::string("cannot create it: ") + std::strerror(errno));
  char header[kGranule] = {};
  std::memcpy(header, kMagic, sizeof kMagic);
  unsigned char id[kIdBytes];
  randombytes_buf(id, sizeof id);
  std::memcpy(header + sizeof kMagic, id, sizeof id);
  char hex[2 * kIdBytes + 1];
  sodium_bin2hex(hex, sizeof hex, id, sizeof id);
  if (::pwrite(fd, header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) || ::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    ::unlink(path.c_str());
    fail(path, "cannot write its header: " + why);
  }
  const std::int64_t reserve = address_space(path, max_bytes, kGranule);
  if (reserve <= kGranule) {
    ::close(fd);
    ::unlink(path.c_str());
    fail(path, "no room for a tier");
  }
  return std::unique_ptr<FileTier>(new FileTier(path, fd, reserve, kGranule, hex));
}

std::unique_ptr<FileTier> FileTier::open(const fs::path& path, const std::string& id_hex, std::int64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open it: ") + std::strerror(errno));
  struct stat s {};
  char header[kGranule] = {};
  const bool readable = ::fstat(fd, &s) == 0 && ::pread(fd, header, sizeof header, 0) == static_cast<ssize_t>(sizeof header);
  char hex[2 * kIdBytes + 1];
  sodium_bin2hex(hex, sizeof hex, reinterpret_cast<const unsigned char*>(header + sizeof kMagic), kIdBytes);
  std::string why;
  if (!readable || std::memcmp(header, kMagic, sizeof kMagic) != 0) {
    why = "not a heinfer tier file";
  } else if (id_hex != hex) {
    why = "another run's tier file (identifier " + std::string(hex) + ", the checkpoint names " + id_hex + ")";
  } else if (s.st_size % kGranule != 0) {
    why = "its size is not a whole number of granules (truncated?)";
  } else if (max_bytes > 0 && s.st_size > max_bytes) {
    why = "larger than the tier limit";
  }
  if (!why.empty()) {
    ::close(fd);
    fail(path, why);
  }
  const std::int64_t size = s.st_size;
  return std::unique_ptr<FileTier>(new FileTier(path, fd, std::max(address_space(path, max_bytes, size), size), size, hex));
}

FileTier::~FileTier() {
  if (base_) ::munmap(base_, static_cast<std::size_t>(reserve_));
  if (fd_ >= 0) ::close(fd_);
}

std::int64_t FileTier::file_bytes() const {
  std::lock_guard lock(mu_);
  return end_;
}

std::int64_t FileTier::quarantined_bytes() const {
  std::lock_guard lock(mu_);
  return quarantined_;
}

bool FileTier::contains(const void* p) const {
  const char* c = static_cast<const char*>(p);
  return c >= base_ + kGranule && c < base_ + reserve_;
}

std::int64_t FileTier::offset_of(const void* p) const {
  if (!contains(p)) throw std::invalid_argument("FileTier::offset_of: not in the tier file");
  return static_cast<const char*>(p) - base_;
}

void FileTier::sync() {
  std::int64_t end = 0;
  {
    std::lock_guard lock(mu_);
    end = end_;
  }
  if (::msync(base_, static_cast<std::size_t>(end), MS_SYNC) != 0 || ::fsync(fd_) != 0) {
    fail(path_, std::string("cannot flush it: ") + std::strerror(errno));
  }
}

void FileTier::commit() {
  std::lock_guard lock(mu_);
  for (const auto& [off, len] : quarantine_) release(off, len);
  quarantine_.clear();
  quarantined_ = 0;
  ++epoch_;
}

void* FileTier::claim(std::int64_t offset, std::int64_t bytes) {
  std::lock_guard lock(mu_);
  if (claim_offset_ >= 0) fail(path_, "a claim is already pending");
  const std::int64_t len = round_up(std::max<std::int64_t>(bytes, 1));
  if (bytes <= 0 || offset < kGranule || offset % kGranule != 0 || offset > end_ - len) {
    fail(path_, "extent at " + std::to_string(offset) + " of " + std::to_string(bytes) + " bytes is not inside the file");
  }
  auto it = free_by_offset_.upper_bound(offset);
  if (it == free_by_offset_.begin() || std::prev(it)->first + std::prev(it)->second < offset + len) {
    fail(path_, "extent at " + std::to_string(offset) + " overlaps another one");
  }
  take_free(offset, len);
  live_[offset] = Extent{len, 0};
  claim_offset_ = offset;
  claim_bytes_ = bytes;
  claim_thread_ = std::this_thread::get_id();
  return base_ + offset;
}

void FileTier::insert_free(std::int64_t off, std::int64_t len) {
  auto next = free_by_offset_.lower_bound(off);
  if (next != free_by_offset_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      free_by_length_.erase({prev->second, prev->first});
      off = prev->first;
      len += prev->second;
      free_by_offset_.erase(prev);
    }
  }
  if (next != free_by_offset_.end() && off + len == next->first) {
    free_by_length_.erase({next->second, next->first});
    len += next->second;
    free_by_offset_.erase(next);
  }
  free_by_offset_[off] = len;
  free_by_length_.insert({len, off});
}

void FileTier::take_free(std::int64_t off, std::int64_t len) {
  auto it = std::prev(free_by_offset_.upper_bound(off));
  const std::int64_t start = it->first, total = it->second;
  free_by_length_.erase({total, start});
  free_by_offset_.erase(it);
  if (off > start) {
    free_by_offset_[start] = off - start;
    free_by_length_.insert({off - start, start});
  }
  if (off + len < start + total) {
    free_by_offset_[off + len] = start + total - off - len;
    free_by_length_.insert({start + total - off - len, off + len});
  }
}

void* FileTier::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (alignment > static_cast<std::size_t>(kGranule)) throw std::bad_alloc();
  std::lock_guard lock(mu_);
  if (claim_offset_ >= 0 && static_cast<std::int64_t>(bytes) == claim_bytes_ &&
      claim_thread_ == std::this_thread::get_id()) {
    const std::int64_t off = claim_offset_;
    claim_offset_ = -1;
    return base_ + off;
  }
  const std::int64_t len = round_up(std::max<std::size_t>(bytes, 1));
  auto fit = free_by_length_.lower_bound({len, 0});
  std::int64_t off = 0;
  if (fit != free_by_length_.end()) {
    off = fit->second;
  } else {
    // Grow the file: from the free extent that ends it, if any.
    off = end_;
    if (!free_by_offset_.empty()) {
      const auto last = std::prev(free_by_offset_.end());
      if (last->first + last->second == end_) off = last->first;
    }
    const std::int64_t need = off + len;
    const std::int64_t new_end = std::min(reserve_, std::max(need, end_ + kGrowBytes));
    if (need > new_end) throw std::bad_alloc();
    if (::posix_fallocate(fd_, end_, new_end - end_) != 0) throw std::bad_alloc();  // the disk is full
    insert_free(end_, new_end - end_);
    end_ = new_end;
  }
  take_free(off, len);
  // Blocks for an extent punched when it was freed (a no-op where they are allocated).
  if (::posix_fallocate(fd_, off, len) != 0) {
    insert_free(off, len);
    throw std::bad_alloc();  // the disk is full
  }
  live_[off] = Extent{len, epoch_};
  if (++allocations_ == fault_allocation_) {
    std::memset(base_ + off, 0xA5, static_cast<std::size_t>(len / 2));
    std::fprintf(stderr, "heinfer: fault injection: killing the process in tier write %lld (half of %lld bytes at offset %lld)\n",
                 static_cast<long long>(allocations_), static_cast<long long>(len), static_cast<long long>(off));
    std::fflush(stderr);
    std::raise(SIGKILL);
  }
  return base_ + off;
}

void FileTier::release(std::int64_t off, std::int64_t len) {
  insert_free(off, len);
  const double now = now_seconds();
  released_.push_back({now, off, len});
  // Extents still free a while after their release: their dirty pages are dropped
  // instead of written back, and their blocks freed. Extents reused by then are not
  // touched (their pages stay mapped: no page faults on a quick reuse).
  while (!released_.empty() && now - released_.front().when > kPunchDelaySeconds) {
    const Released r = released_.front();
    released_.pop_front();
    auto it = free_by_offset_.upper_bound(r.off);
    if (it == free_by_offset_.begin()) continue;
    --it;
    if (it->first + it->second >= r.off + r.len) {
      (void)::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, r.off, r.len);
    }
  }
}

void FileTier::do_deallocate(void* p, std::size_t /*bytes*/, std::size_t /*alignment*/) {
  if (!p) return;
  std::lock_guard lock(mu_);
  const std::int64_t off = static_cast<char*>(p) - base_;
  const auto it = live_.find(off);
  if (it == live_.end()) return;  // not ours: never happens with a correct caller
  const Extent e = it->second;
  live_.erase(it);
  if (e.epoch < epoch_) {
    quarantine_.emplace_back(off, e.len);
    quarantined_ += e.len;
  } else {
    release(off, e.len);
  }
}

}  // namespace heinfer::memory
