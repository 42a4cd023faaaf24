// Internal: AVX-512 IFMA kernels of the ring layer (ntt_avx512.cpp, poly_arith_avx512.cpp).
//
// Not part of the public API. These functions are compiled with AVX-512 enabled and must
// only be called after the run-time check of cpu_features.h (use_ifma(q) for the
// IFMA kernels, simd_path() == SimdPath::Ifma for the add/sub/negate kernels).
// Every kernel gives results bit-identical to the portable code of ntt.cpp / poly_arith.cpp.
//
// 52-bit arithmetic (vpmadd52luq / vpmadd52huq multiply the low 52 bits of two lanes and
// add the low / high 52 bits of the 104-bit product to a 64-bit accumulator):
//  - Shoup multiplication by a constant w < q with w' = floor(w·2^52/q): for x < 2^52,
//    Q = hi52(x·w'), r = (x·w − Q·q) mod 2^52 ∈ [0, 2q) (D. Harvey, J. Symb. Comp. 2014,
//    with β = 2^52 instead of 2^64). The subtraction is folded into one more IFMA by
//    adding lo52(Q·(2^52 − q)) ≡ −Q·q (mod 2^52).
//  - Lazy Harvey butterflies keep values in [0, 4q) ⊂ [0, 2^52), hence q < 2^50.
// The vector NTT follows the approach of Intel HEXL (F. Boemer, S. Kim, G. Seifu,
// F. de Souza, V. Gopal, "Intel HEXL: Accelerating Homomorphic Encryption with Intel
// AVX512-IFMA52", WAHC 2021); the code and the lane layouts here are our own.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heinfer::ring::simd {

/// Twiddle tables of one NTTTables for the IFMA NTT (all owned by NTTTables).
struct NttIfmaTables {
  size_t n = 0;  // power of two, >= 16
  uint64_t q = 0;  // < 2^50
  // Forward: w[k] = ψ^bitrev(k), ws[k] = floor(w[k]·2^52/q) (k < n).
  const uint64_t* w = nullptr;
  const uint64_t* ws = nullptr;
  // Forward stages t = 4 and t = 2 expanded to the lane layout of the fused kernel
  // (n/2 entries each): w4[8b + l] = w[n/8 + 2b + l/4], w2[8b + l] = w[n/4 + 4b + l/2].
  const uint64_t* w4 = nullptr;
  const uint64_t* w4s = nullptr;
  const uint64_t* w2 = nullptr;
  const uint64_t* w2s = nullptr;
  // Inverse: the same for ψ^-bitrev(k).
  const uint64_t* iw = nullptr;
  const uint64_t* iws = nullptr;
  const uint64_t* iw4 = nullptr;
  const uint64_t* iw4s = nullptr;
  const uint64_t* iw2 = nullptr;
  const uint64_t* iw2s = nullptr;
  // Last inverse stage, with the 1/n factor merged: n^-1 and n^-1·iw[1], 52-bit Shoup.
  uint64_t inv_n = 0, inv_n_s = 0;
  uint64_t inv_n_w1 = 0, inv_n_w1_s = 0;
};

/// In-place forward negacyclic NTT, inputs in [0, q), outputs in [0, q) (bit-reversed
/// evaluation order, identical to NTTTables::forward_scalar).
void ntt_forward_ifma(const NttIfmaTables& t, uint64_t* a);
/// In-place inverse negacyclic NTT including 1/n; identical to NTTTables::inverse_scalar.
void ntt_inverse_ifma(const NttIfmaTables& t, uint64_t* a);

// Element-wise kernels (semantics of poly_arith.h). The add/sub/negate/add_scalar kernels
// only need AVX512F and work for any q < 2^61; the others need q < 2^50 (IFMA).
void add_poly_avx512(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q);
void sub_poly_avx512(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q);
void negate_poly_avx512(const uint64_t* a, uint64_t* out, size_t n, uint64_t q);
void add_scalar_poly_avx512(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n,
                            uint64_t q);
/// bit_count: number of bits of q (Modulus::bit_count).
void multiply_poly_ifma(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n,
                        uint64_t q, int bit_count);
void multiply_add_poly_ifma(const uint64_t* a, const uint64_t* b, uint64_t* acc, size_t n,
                            uint64_t q, int bit_count);
void multiply_scalar_poly_ifma(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n,
                               uint64_t q);
void dot_scalar_poly_ifma(const uint64_t* const* inputs, const uint64_t* scalars, size_t count,
                          uint64_t* out, size_t n, uint64_t q);

/// floor(w·2^52/q) for w < q < 2^52.
inline uint64_t shoup52(uint64_t w, uint64_t q) {
  __extension__ typedef unsigned __int128 u128_t;
  return static_cast<uint64_t>((static_cast<u128_t>(w) << 52) / q);
}

}  // namespace heinfer::ring::simd
