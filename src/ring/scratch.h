// Per-thread, grow-only scratch buffers so that hot paths (key switching, rescale,
// rotation, encryption) do not allocate after warm-up. Internal.
//
// A client layer names its buffers with an enum class whose last enumerator is `Count`
// (e.g. the scheme layer's key-switching, rescale and encryption slots). Each enum type
// has its own buffers, one per slot and thread, so layers cannot collide. A function must
// not hold a slot while calling another function that uses the same slot. OpenMP worker
// threads have their own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ring/aligned_memory.h"

namespace heinfer::ring::detail {

/// A buffer of at least `words` 64-bit words for this thread and slot (contents
/// unspecified), 64-byte aligned. `Slot` is an enum class whose last enumerator is `Count`.
template <typename Slot>
  requires std::is_enum_v<Slot>
uint64_t* scratch(Slot slot, size_t words) {
  thread_local std::array<LimbVector, static_cast<size_t>(Slot::Count)> buffers;
  LimbVector& b = buffers[static_cast<size_t>(slot)];
  if (b.size() < words) b.resize(words);
  return b.data();
}

}  // namespace heinfer::ring::detail
