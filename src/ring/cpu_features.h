// Run-time CPU dispatch of the ring kernels: three paths with bit-identical results.
//
//  - Ifma (*_avx512.cpp): AVX512F + AVX512IFMA (+VL/DQ/BW); vpmadd52luq / vpmadd52huq,
//    52-bit integer multiply-add, 8 lanes.
//  - Avx2 (*_avx2.cpp): AVX2 + FMA; modular products in double precision (exact product
//    by FMA, quotient by rounding), 4 lanes. J. van der Hoeven, G. Lecerf, G. Quintin,
//    "Modular SIMD arithmetic in Mathemagix", ACM TOMS 43(1), 2016, sections 2-3.
//  - Portable: scalar C++ (64x64->128-bit products) that compilers vectorize where they can.
//
// A kernel that multiplies takes the selected SIMD path only for primes below 2^50 (IFMA:
// lazy values < 4q fit in 52 bits) or 2^49 (AVX2: every intermediate is an integer below
// 2^50 in magnitude, exact in a double); larger primes run the portable code. Additions and subtractions
// take the SIMD path for every prime.
#pragma once

#include <cstdint>
#include <string_view>

namespace heinfer::ring {

/// The kernel families, ordered from the most portable to the fastest.
enum class SimdPath { Portable = 0, Avx2 = 1, Ifma = 2 };

/// "portable", "avx2" or "ifma".
std::string_view simd_path_name(SimdPath path);

/// True if this CPU supports AVX512F, AVX512IFMA, AVX512VL, AVX512DQ and AVX512BW.
bool cpu_has_avx512_ifma();
/// True if this CPU supports AVX2 and FMA.
bool cpu_has_avx2_fma();
/// The fastest path this CPU supports.
SimdPath cpu_best_simd_path();

/// The path in use. At first call: the CPU's best, capped by the environment variable
/// HEINFER_SIMD ("portable", "avx2" or "ifma"; an unknown value is ignored).
SimdPath simd_path();

/// Selects `path`, capped at what the CPU supports; returns the path now in use. For
/// tests and benchmarks comparing paths; not thread-safe with concurrent kernel calls.
SimdPath set_simd_path(SimdPath path);

/// Exclusive bound on the primes of the multiplying IFMA kernels (lazy values < 4q < 2^52).
inline constexpr uint64_t kIfmaModulusBound = uint64_t{1} << 50;
/// Exclusive bound on the primes of the multiplying AVX2 kernels (every intermediate value
/// of the NTT stays below 2^50 in magnitude, so products are exact by FMA; simd_kernels_avx2.h).
inline constexpr uint64_t kAvx2ModulusBound = uint64_t{1} << 49;

/// True if the IFMA kernels apply to modulus q right now.
inline bool use_ifma(uint64_t q) { return q < kIfmaModulusBound && simd_path() == SimdPath::Ifma; }
/// True if the AVX2/FMA kernels apply to modulus q right now.
inline bool use_avx2(uint64_t q) { return q < kAvx2ModulusBound && simd_path() == SimdPath::Avx2; }

}  // namespace heinfer::ring
