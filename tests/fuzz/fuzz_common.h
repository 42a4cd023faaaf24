// Shared setup for the libFuzzer targets (one per loader). Each target loads the input
// bytes; a SerializationError is the expected outcome for malformed input, any other
// exception or a sanitizer report is a bug. Accepted inputs must re-serialize to the
// same bytes (the format is canonical).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "ckks/context.h"
#include "ckks/serialization.h"

namespace heinfer::ckks::fuzz {

/// A small context (N = 2048, chain {30, 30}, special {31}; insecure, tests only).
inline const CKKSContext& context() {
  static const ContextPtr ctx = CKKSContext::create(
      EncryptionParameters(2048, {30, 30}, {31}, SecurityLevel::None));
  return *ctx;
}

/// Limit on declared body sizes while fuzzing (keeps allocations small).
inline constexpr uint64_t kMaxBytes = uint64_t{1} << 22;

inline std::span<const uint8_t> bytes(const uint8_t* data, size_t size) { return {data, size}; }

inline void require_same(const std::vector<uint8_t>& again, const uint8_t* data, size_t size) {
  if (again.size() != size || std::memcmp(again.data(), data, size) != 0) __builtin_trap();
}

}  // namespace heinfer::ckks::fuzz
