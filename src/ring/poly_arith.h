// Coefficient-wise kernels on one RNS limb: n words modulo a prime q.
//
// Unless stated otherwise, inputs are in [0, q) and outputs in [0, q); `out` may
// alias any input (in-place use). In the NTT domain `multiply_poly` is the
// negacyclic polynomial product. Dispatch: AVX-512 IFMA when use_ifma(q), AVX2 + FMA when
// use_avx2(q) (cpu_features.h), else portable; results are identical. add/sub/negate/
// add_scalar need no products and take the selected SIMD path for every q.
//
// IFMA kernels (poly_arith_avx512.cpp, q < 2^50; 52-bit arithmetic as in simd_kernels.h):
//  - multiply_poly / multiply_add_poly: the 104-bit product as lo52/hi52 halves, Barrett
//    reduction with a 52-bit constant floor(2^(b-2+52)/q) (b = bit count of q; quotient
//    error < 2.5, two conditional subtractions). P. Barrett, CRYPTO 1986.
//  - multiply_scalar_poly: Shoup with w' = floor(w·2^52/q) (Harvey 2014, β = 2^52).
//  - dot_scalar_poly: lo52 and hi52 halves of the products summed in separate 64-bit
//    lanes (4096 products fit), then one reduction of hi·2^52 + lo per coefficient.
// AVX2 kernels (poly_arith_avx2.cpp, multi_dot_avx2.cpp, q < 2^49): products exact in
// doubles by FMA, quotients by rounding (van der Hoeven, Lecerf, Quintin, ACM TOMS 2016;
// simd_kernels_avx2.h); dot products sum reduced products in doubles.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ring/modulus.h"

namespace heinfer::ring {

void add_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, const Modulus& q);
void sub_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, const Modulus& q);
void negate_poly(const uint64_t* a, uint64_t* out, size_t n, const Modulus& q);

/// out = a · b (pointwise, Barrett).
void multiply_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n,
                   const Modulus& q);
/// acc = acc + a · b (pointwise).
void multiply_add_poly(const uint64_t* a, const uint64_t* b, uint64_t* acc, size_t n,
                       const Modulus& q);

/// out = a · scalar (scalar < q; Shoup multiplication).
void multiply_scalar_poly(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n,
                          const Modulus& q);
/// out = a + scalar (scalar < q) on every coefficient (use on NTT-form data, where a
/// constant polynomial is the same value in every slot).
void add_scalar_poly(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n,
                     const Modulus& q);

/// Lazy-reduction dot product, the core of every linear layer:
///   out[i] = Σ_k inputs[k][i] · scalars[k]  mod q,   k = 0..count-1,
/// with one modular reduction per output coefficient (products are accumulated in
/// 128-bit, or as 52-bit halves in IFMA lanes). scalars[k] < q. `out` must not alias
/// an input. count may be 0 (out = 0).
void dot_scalar_poly(const uint64_t* const* inputs, const uint64_t* scalars, size_t count,
                     uint64_t* out, size_t n, const Modulus& q);

}  // namespace heinfer::ring
