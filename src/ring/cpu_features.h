// Run-time CPU dispatch for the AVX-512 IFMA kernels (*_avx512.cpp).
//
// The IFMA path (vpmadd52luq / vpmadd52huq: 52-bit multiply-add) is used for a
// limb only when the CPU has AVX512F + AVX512IFMA (+VL/DQ/BW) *and* the prime is
// below 2^50 (so lazy values < 4q fit in 52 bits); otherwise the portable scalar
// path runs. Both paths give bit-identical results.
#pragma once

#include <cstdint>

namespace heinfer::ring {

/// True if this CPU supports AVX512F, AVX512IFMA, AVX512VL, AVX512DQ and AVX512BW.
bool cpu_has_avx512_ifma();

/// True if the IFMA kernels are in use: the CPU has them, they were not disabled by
/// set_simd_enabled(false), and the environment variable HEINFER_DISABLE_AVX512 is
/// unset or "0" at first call.
bool simd_enabled();

/// Forces the portable path (false) or re-enables IFMA if the CPU has it (true).
/// Intended for tests and benchmarks comparing both paths. Not thread-safe with
/// concurrent kernel calls.
void set_simd_enabled(bool enabled);

/// Largest prime (exclusive bound, 2^50) for which the IFMA kernels are used.
inline constexpr uint64_t kIfmaModulusBound = uint64_t{1} << 50;

/// True if the IFMA kernels apply to modulus q right now.
inline bool use_ifma(uint64_t q) { return q < kIfmaModulusBound && simd_enabled(); }

}  // namespace heinfer::ring
