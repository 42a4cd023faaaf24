// Cache-line-aligned storage for RNS limbs. A limb of n >= 8 words then starts on a
// 64-byte boundary, so the 8-word (AVX-512) and 4-word (AVX2) vector loads and stores of
// the kernels never straddle two cache lines. (The heap aligns to 16 bytes only: a
// 640 KiB ciphertext from malloc starts 16 bytes past a page, and every limb with it.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <new>
#include <type_traits>
#include <utility>
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

/// A std::pmr::polymorphic_allocator whose value-initialization (vector::resize(n),
/// vector(n)) leaves the elements default-initialized: storage that the kernels overwrite
/// whole is not zero-filled first (the idea of C++20's make_unique_for_overwrite). Every
/// other construction, copies included, is the polymorphic allocator's.
template <class T>
struct ForOverwriteAllocator : std::pmr::polymorphic_allocator<T> {
  using std::pmr::polymorphic_allocator<T>::polymorphic_allocator;
  ForOverwriteAllocator(const std::pmr::polymorphic_allocator<T>& base) noexcept  // NOLINT: implicit
      : std::pmr::polymorphic_allocator<T>(base) {}
  template <class U>
  struct rebind {
    using other = ForOverwriteAllocator<U>;
  };
  template <class U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
    ::new (static_cast<void*>(p)) U;
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    std::pmr::polymorphic_allocator<T>::construct(p, std::forward<Args>(args)...);
  }
  ForOverwriteAllocator select_on_container_copy_construction() const { return ForOverwriteAllocator(); }
};

/// Limb words in aligned storage: [limb][coefficient] buffers of plaintexts, keys, scratch.
using LimbVector = std::vector<std::uint64_t, AlignedAllocator<std::uint64_t>>;

}  // namespace heinfer::ring
