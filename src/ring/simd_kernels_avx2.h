// Internal: AVX2 + FMA kernels of the ring layer (*_avx2.cpp), 4 lanes of doubles.
//
// Not part of the public API. Compiled with -mavx2 -mfma and called only when use_avx2(q)
// (cpu_features.h; q < 2^49) or, for the add/sub/negate kernels, when the AVX2 path is
// selected (any q < 2^61). Every kernel gives results bit-identical to the portable code.
//
// Arithmetic (J. van der Hoeven, G. Lecerf, G. Quintin, "Modular SIMD arithmetic in
// Mathemagix", ACM TOMS 43(1), 2016, sections 2-3): residues are integers held exactly in
// doubles, in a signed, lazily reduced representation |x| <= 2^50. A product x·w mod q is
//   h = fl(x·w), l = x·w - h (one FMA, exact), c = round(x·w'), w' = fl(w/q) (one FMA
//   with 1.5·2^52 added), r = (h - c·q) + l  (one FMA, exact: an integer below 2^53),
// with |r| <= q·(1/2 + |x|·2^-53) <= 5q/8 for |x| <= 2^50 (the bounds below keep 3q/4). Conversions between words below
// 2^52 and doubles are exact bit operations with the constant 2^52.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ring/modulus.h"

namespace heinfer::ring::avx2 {

/// Twiddle tables of one NTTTables for the AVX2 NTT (owned by NTTTables), as doubles.
struct NttTables {
  size_t n = 0;       // power of two, >= 16
  double q = 0;       // < 2^49
  double q_inv = 0;   // fl(1/q)
  // w[k] = ψ^bitrev(k), wq[k] = fl(w[k]/q) (k < n); iw, iwq: the same for ψ^-bitrev(k).
  const double* w = nullptr;
  const double* wq = nullptr;
  const double* iw = nullptr;
  const double* iwq = nullptr;
  // The stage of distance 2 in lane order: w2[4b + l] = w[n/4 + 2b + l/2] (n/2 entries),
  // for both directions; and the inverse stage of distance 1:
  // iw1[4b + l] = iw[n/2 + 4b + {0, 2, 1, 3}[l]].
  const double* w2 = nullptr;
  const double* w2q = nullptr;
  const double* iw2 = nullptr;
  const double* iw2q = nullptr;
  const double* iw1 = nullptr;
  const double* iw1q = nullptr;
  // The last inverse stage with 1/n merged: n^-1 and n^-1·iw[1], with their quotients.
  double inv_n = 0, inv_n_q = 0, inv_n_w1 = 0, inv_n_w1_q = 0;
  // Bit s set: stage s (0 = the first one run) reduces its inputs first (forward: the
  // upper value only), so that no value exceeds 2^50 (ntt_reductions()).
  uint32_t forward_reduce = 0;
  uint32_t inverse_reduce = 0;
};

/// The stages of the forward (first) and inverse (second) transforms that must reduce,
/// from a bound on every intermediate value (q < 2^49). Throws std::logic_error if no
/// schedule keeps the values below 2^50.
struct NttReductions {
  uint32_t forward = 0;
  uint32_t inverse = 0;
};
NttReductions ntt_reductions(size_t n, uint64_t q);

/// In-place forward / inverse negacyclic NTT on words in [0, q); identical to
/// NTTTables::forward_scalar / inverse_scalar.
void ntt_forward(const NttTables& t, uint64_t* a);
void ntt_inverse(const NttTables& t, uint64_t* a);

// Element-wise kernels (semantics of poly_arith.h). add/sub/negate/add_scalar: any
// q < 2^61; the others q < 2^49.
void add_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q);
void sub_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q);
void negate_poly(const uint64_t* a, uint64_t* out, size_t n, uint64_t q);
void add_scalar_poly(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n, uint64_t q);
void multiply_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q);
void multiply_add_poly(const uint64_t* a, const uint64_t* b, uint64_t* acc, size_t n, uint64_t q);
void multiply_scalar_poly(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n, uint64_t q);

/// Primes below this bound (2^31) take exact 64-bit integer products in multi_dot, for
/// sums of up to kMaxIntegerCount terms (their split sums stay below 2^50).
inline constexpr uint64_t kIntegerProductBound = uint64_t{1} << 31;
inline constexpr size_t kMaxIntegerCount = size_t{1} << 18;

/// out[m][i] = Σ_k inputs[k][i]·scalars[m][k] mod q for m < outputs, i < len (len % 4 == 0,
/// any count, outputs any). Coefficients in tiles of 64 and inputs in passes of 32 (L1),
/// partial sums of all outputs kept per tile; for q < 2^31, exact integer products summed
/// in 64-bit lanes, split into 32-bit halves every (2^64 - 1)/(q - 1)^2 terms and reduced
/// once; else products reduced in double lanes, sums reduced before they pass 2^50.
void multi_dot(const uint64_t* const* inputs, size_t count, const uint64_t* const* scalars,
               size_t outputs, uint64_t* const* out, size_t len, uint64_t q);
/// The single-output form over a whole limb (n % 4 == 0): poly_arith.h's dot_scalar_poly.
void dot_scalar_poly(const uint64_t* const* inputs, const uint64_t* scalars, size_t count,
                     uint64_t* out, size_t n, uint64_t q);

}  // namespace heinfer::ring::avx2
