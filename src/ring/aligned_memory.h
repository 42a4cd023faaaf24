// Cache-line-aligned storage for RNS limbs. A limb of n >= 8 words then starts on a
// 64-byte boundary, so the 8-word (AVX-512) and 4-word (AVX2) vector loads and stores of
// the kernels never straddle two cache lines. (The heap aligns to 16 bytes only: a
// 640 KiB ciphertext from malloc starts 16 bytes past a page, and every limb with it.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <new>
#include <vector>

namespace heinfer::ring {

/// Alignment of limb storage, in bytes: one cache line, one AVX-512 vector.
inline constexpr std::size_t kLimbAlignment = 64;

/// A memory resource over the global heap that aligns every block to kLimbAlignment (or
/// the requested alignment, if larger). Thread-safe; lives for the whole program.
std::pmr::memory_resource* aligned_resource();

/// std::allocator with kLimbAlignment-aligned blocks, for std::vector storage of limbs.
template <class T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() noexcept = default;
  template <class U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}
  T* allocate(std::size_t count) {
    return static_cast<T*>(::operator new(count * sizeof(T), std::align_val_t{kLimbAlignment}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{kLimbAlignment}); }
  template <class U>
  bool operator==(const AlignedAllocator<U>&) const noexcept {
    return true;
  }
};

/// Limb words in aligned storage: [limb][coefficient] buffers of plaintexts, keys, scratch.
using LimbVector = std::vector<std::uint64_t, AlignedAllocator<std::uint64_t>>;

}  // namespace heinfer::ring
