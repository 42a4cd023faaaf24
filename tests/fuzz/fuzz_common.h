// Shared helpers of the libFuzzer targets (one concept per target file).
//
// The contract every target checks: an input is either refused with the loader's
// documented exception type, or accepted as a valid object that round-trips (re-
// serializes to the same bytes, or to bytes that load to the same object). Anything
// else - another exception, a failed round trip, a sanitizer report - aborts the run.
// Inputs made of several messages are frames: u32 little-endian length, then the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ckks/context.h"
#include "ckks/serialization.h"

namespace heinfer::fuzz {

/// The insecure context of the CKKS object targets (N = 64, chain {30, 30}, special
/// {31}; tests only): small objects, fast loads, two levels.
inline const ckks::ContextPtr& context_ptr() {
  static const ckks::ContextPtr ctx = ckks::CKKSContext::create(
      ckks::EncryptionParameters(64, {30, 30}, {31}, ckks::SecurityLevel::None));
  return ctx;
}
inline const ckks::CKKSContext& context() { return *context_ptr(); }

/// Limit on declared body sizes while fuzzing (keeps allocations small).
inline constexpr uint64_t kMaxBytes = uint64_t{1} << 22;

inline std::span<const uint8_t> bytes(const uint8_t* data, size_t size) { return {data, size}; }
inline std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

/// A broken contract: prints what and aborts (libFuzzer saves the input).
[[noreturn]] inline void violation(const char* what, const char* detail = "") {
  std::fprintf(stderr, "fuzz contract violated: %s %s\n", what, detail);
  std::fflush(stderr);
  __builtin_trap();
}

/// An exception outside the documented ones.
[[noreturn]] inline void unexpected(const std::exception& e) { violation("undocumented exception:", e.what()); }

/// Accepted inputs of canonical formats must re-serialize to the same bytes.
inline void require_same(const std::vector<uint8_t>& again, const uint8_t* data, size_t size) {
  if (again.size() != size || (size != 0 && std::memcmp(again.data(), data, size) != 0)) {
    violation("accepted input does not re-serialize to the same bytes");
  }
}

/// The contract of a canonical CKKS object loader: SerializationError, or an object
/// that re-serializes (`save`) to the same bytes.
template <class Load, class Save>
void check_canonical(const uint8_t* data, size_t size, Load load, Save save) {
  try {
    const auto object = load(bytes(data, size));
    require_same(save(object), data, size);
  } catch (const ckks::SerializationError&) {
  } catch (const std::exception& e) {
    unexpected(e);
  }
}

/// Splits an input into frames (u32 little-endian length, then that many bytes); a
/// truncated last frame is dropped.
inline std::vector<std::string_view> frames(const uint8_t* data, size_t size) {
  std::vector<std::string_view> out;
  size_t at = 0;
  while (size - at >= 4) {
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= uint32_t{data[at + i]} << (8 * i);
    at += 4;
    if (n > size - at) break;
    out.emplace_back(reinterpret_cast<const char*>(data + at), n);
    at += n;
  }
  return out;
}

/// The inverse of frames(): what the seed generator writes.
inline void append_frame(std::string& out, std::string_view frame) {
  const auto n = static_cast<uint32_t>(frame.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(frame);
}

}  // namespace heinfer::fuzz
