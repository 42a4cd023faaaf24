// AVX-512 (IFMA) element-wise kernels on one RNS limb (semantics: poly_arith.h; the
// 52-bit arithmetic is described in simd_kernels.h).
//
// Every loop handles 8 coefficients per vector, four vectors per iteration, and a last
// partial vector with masked loads/stores (n need not be a multiple of 8).
#include <immintrin.h>

// GCC 12's _mm512_undefined_epi32() (used inside the unmasked intrinsics) trips
// -Wmaybe-uninitialized once inlined (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>

#include "ring/simd_kernels.h"

namespace heinfer::ring::simd {

namespace {

__extension__ typedef unsigned __int128 u128_t;

constexpr uint64_t kMask52 = (uint64_t{1} << 52) - 1;

inline __m512i set1(uint64_t v) { return _mm512_set1_epi64(static_cast<long long>(v)); }

/// Full-vector memory access.
struct Full {
  __m512i load(const uint64_t* p) const { return _mm512_loadu_si512(p); }
  void store(uint64_t* p, __m512i v) const { _mm512_storeu_si512(p, v); }
};
/// Partial last vector: lanes outside the mask are neither read nor written.
struct Partial {
  __mmask8 k;
  __m512i load(const uint64_t* p) const { return _mm512_maskz_loadu_epi64(k, p); }
  void store(uint64_t* p, __m512i v) const { _mm512_mask_storeu_epi64(p, k, v); }
};

/// Calls op(i, io) for every vector of coefficients [i, i + 8) ∩ [0, n).
template <class Op>
inline void for_each_vector(size_t n, Op&& op) {
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    op(i, Full{});
    op(i + 8, Full{});
    op(i + 16, Full{});
    op(i + 24, Full{});
  }
  for (; i + 8 <= n; i += 8) op(i, Full{});
  if (i < n) op(i, Partial{static_cast<__mmask8>((1u << (n - i)) - 1)});
}

/// x in [0, 2·bound) -> [0, bound).
inline __m512i reduce_once(__m512i x, __m512i bound) {
  return _mm512_min_epu64(x, _mm512_sub_epi64(x, bound));
}

/// x·w mod q in [0, 2q) for x < 2^52, w < q, ws = floor(w·2^52/q); neg_q = 2^52 - q.
inline __m512i mul_shoup(__m512i x, __m512i w, __m512i ws, __m512i neg_q, __m512i mask) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i quot = _mm512_madd52hi_epu64(zero, x, ws);
  __m512i r = _mm512_madd52lo_epu64(zero, x, w);
  r = _mm512_madd52lo_epu64(r, quot, neg_q);
  return _mm512_and_si512(r, mask);
}

/// Barrett reduction of a·b for a, b < q < 2^50 (b bits: q < 2^b, b <= 50).
/// With p = a·b = hi·2^52 + lo, s = b - 2 and mu = floor(2^(s+52) / q) < 2^52:
///   x = floor(p / 2^s) = hi·2^(52-s) + lo / 2^s < 2^(b+2) <= 2^52,
///   Q = floor(x·mu / 2^52) satisfies p/q - 2.5 < Q <= p/q, so r = p - Q·q ∈ [0, 3q),
/// computed exactly modulo 2^52 (3q < 2^52), then two conditional subtractions.
struct Barrett52 {
  __m512i q, two_q, neg_q, mask, mu;
  __m128i shift_lo, shift_hi;
  Barrett52(uint64_t qv, int bits)
      : q(set1(qv)), two_q(set1(2 * qv)), neg_q(set1((uint64_t{1} << 52) - qv)),
        mask(set1(kMask52)),
        mu(set1(static_cast<uint64_t>((static_cast<u128_t>(1) << (bits - 2 + 52)) / qv))),
        shift_lo(_mm_cvtsi64_si128(bits - 2)),
        shift_hi(_mm_cvtsi64_si128(52 - (bits - 2))) {}

  __m512i mul(__m512i a, __m512i b) const {
    const __m512i zero = _mm512_setzero_si512();
    const __m512i lo = _mm512_madd52lo_epu64(zero, a, b);
    const __m512i hi = _mm512_madd52hi_epu64(zero, a, b);
    const __m512i x =
        _mm512_or_si512(_mm512_sll_epi64(hi, shift_hi), _mm512_srl_epi64(lo, shift_lo));
    const __m512i quot = _mm512_madd52hi_epu64(zero, x, mu);
    __m512i r = _mm512_and_si512(_mm512_madd52lo_epu64(lo, quot, neg_q), mask);  // [0, 3q)
    r = reduce_once(r, two_q);                                                     // [0, 2q)
    return reduce_once(r, q);
  }
};

}  // namespace

void add_poly_avx512(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q) {
  const __m512i vq = set1(q);
  for_each_vector(n, [&](size_t i, auto io) {
    io.store(out + i, reduce_once(_mm512_add_epi64(io.load(a + i), io.load(b + i)), vq));
  });
}

void sub_poly_avx512(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q) {
  const __m512i vq = set1(q);
  for_each_vector(n, [&](size_t i, auto io) {
    // a - b wraps above 2^63 when a < b; then a - b + q is the smaller one.
    const __m512i d = _mm512_sub_epi64(io.load(a + i), io.load(b + i));
    io.store(out + i, _mm512_min_epu64(d, _mm512_add_epi64(d, vq)));
  });
}

void negate_poly_avx512(const uint64_t* a, uint64_t* out, size_t n, uint64_t q) {
  const __m512i vq = set1(q);
  for_each_vector(n, [&](size_t i, auto io) {
    const __m512i x = io.load(a + i);
    io.store(out + i, _mm512_maskz_sub_epi64(_mm512_test_epi64_mask(x, x), vq, x));
  });
}

void add_scalar_poly_avx512(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n,
                            uint64_t q) {
  const __m512i vq = set1(q), s = set1(scalar);
  for_each_vector(n, [&](size_t i, auto io) {
    io.store(out + i, reduce_once(_mm512_add_epi64(io.load(a + i), s), vq));
  });
}

void multiply_poly_ifma(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n,
                        uint64_t q, int bit_count) {
  const Barrett52 br(q, bit_count);
  for_each_vector(n, [&](size_t i, auto io) {
    io.store(out + i, br.mul(io.load(a + i), io.load(b + i)));
  });
}

void multiply_add_poly_ifma(const uint64_t* a, const uint64_t* b, uint64_t* acc, size_t n,
                            uint64_t q, int bit_count) {
  const Barrett52 br(q, bit_count);
  for_each_vector(n, [&](size_t i, auto io) {
    const __m512i p = br.mul(io.load(a + i), io.load(b + i));
    io.store(acc + i, reduce_once(_mm512_add_epi64(io.load(acc + i), p), br.q));
  });
}

void multiply_scalar_poly_ifma(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n,
                               uint64_t q) {
  const __m512i vq = set1(q), neg_q = set1((uint64_t{1} << 52) - q), mask = set1(kMask52);
  const __m512i w = set1(scalar), ws = set1(shoup52(scalar, q));
  for_each_vector(n, [&](size_t i, auto io) {
    io.store(out + i, reduce_once(mul_shoup(io.load(a + i), w, ws, neg_q, mask), vq));
  });
}

// ---------------------------------------------------------------------------------------
// dot_scalar_poly: out[i] = Σ_k inputs[k][i] · scalars[k] mod q.
//
// Each product p = x·s < q^2 < 2^100 is accumulated as two 64-bit lanes, lo += p mod 2^52
// (< 2^52) and hi += floor(p / 2^52) (< 2^48): 4096 products fit (4096·(2^52 - 1) < 2^64,
// 4096·2^48 = 2^60). After that many, the pair is folded to one value r < q (kept in lo,
// which then has room for 4095 more). The fold computes (hi·2^52 + lo) mod q as
//   H = hi + lo / 2^52 = H1·2^52 + H0,  L = lo mod 2^52,
//   value ≡ L + H0·(2^52 mod q) + H1·(2^104 mod q)   (mod q),
// three Shoup products in [0, 2q) each, summed (< 6q) and reduced.
// ---------------------------------------------------------------------------------------
namespace {

struct DotConsts {
  __m512i q, two_q, four_q, neg_q, mask;
  __m512i one, one_s;  // 1 and floor(2^52 / q)
  __m512i c1, c1_s;    // 2^52 mod q
  __m512i c2, c2_s;    // 2^104 mod q
  explicit DotConsts(uint64_t qv)
      : q(set1(qv)), two_q(set1(2 * qv)), four_q(set1(4 * qv)),
        neg_q(set1((uint64_t{1} << 52) - qv)), mask(set1(kMask52)), one(set1(1)),
        one_s(set1(shoup52(1, qv))) {
    const uint64_t r1 = static_cast<uint64_t>((static_cast<u128_t>(1) << 52) % qv);
    const uint64_t r2 = static_cast<uint64_t>((static_cast<u128_t>(r1) * r1) % qv);
    c1 = set1(r1);
    c1_s = set1(shoup52(r1, qv));
    c2 = set1(r2);
    c2_s = set1(shoup52(r2, qv));
  }

  /// (hi·2^52 + lo) mod q for lo < 2^64, hi < 2^61.
  __m512i fold(__m512i lo, __m512i hi) const {
    const __m512i h = _mm512_add_epi64(hi, _mm512_srli_epi64(lo, 52));
    const __m512i l = _mm512_and_si512(lo, mask);
    const __m512i h0 = _mm512_and_si512(h, mask);
    const __m512i h1 = _mm512_srli_epi64(h, 52);
    __m512i r = mul_shoup(l, one, one_s, neg_q, mask);
    r = _mm512_add_epi64(r, mul_shoup(h0, c1, c1_s, neg_q, mask));
    r = _mm512_add_epi64(r, mul_shoup(h1, c2, c2_s, neg_q, mask));  // [0, 6q)
    r = reduce_once(r, four_q);
    r = reduce_once(r, two_q);
    return reduce_once(r, q);
  }
};

constexpr size_t kFirstChunk = 4096;  // products before the first fold (accumulators at 0)
constexpr size_t kNextChunk = 4095;   // products after a fold (lo starts below q)

/// V vectors of coefficients starting at `base`; the last one partial when kMasked.
template <int V, bool kMasked>
inline void dot_block(const uint64_t* const* inputs, const uint64_t* scalars, size_t count,
                      uint64_t* out, size_t base, __mmask8 last_mask, const DotConsts& c) {
  __m512i lo[V], hi[V];
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) lo[v] = hi[v] = _mm512_setzero_si512();
  size_t k = 0, limit = kFirstChunk;
  while (true) {
    const size_t end = std::min(count, k + limit);
    for (; k < end; ++k) {
      const __m512i s = set1(scalars[k]);
      const uint64_t* p = inputs[k] + base;
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) {
        const __m512i x = (kMasked && v == V - 1) ? _mm512_maskz_loadu_epi64(last_mask, p + 8 * v)
                                                   : _mm512_loadu_si512(p + 8 * v);
        lo[v] = _mm512_madd52lo_epu64(lo[v], x, s);
        hi[v] = _mm512_madd52hi_epu64(hi[v], x, s);
      }
      if constexpr (V == 8 && !kMasked) {
        // Next block of the same input: read again after all `count` inputs of this one.
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) {
          _mm_prefetch(reinterpret_cast<const char*>(p + 64 + 8 * v), _MM_HINT_T0);
        }
      }
    }
    if (k == count) break;
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      lo[v] = c.fold(lo[v], hi[v]);
      hi[v] = _mm512_setzero_si512();
    }
    limit = kNextChunk;
  }
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) {
    const __m512i r = c.fold(lo[v], hi[v]);
    if (kMasked && v == V - 1) {
      _mm512_mask_storeu_epi64(out + base + 8 * v, last_mask, r);
    } else {
      _mm512_storeu_si512(out + base + 8 * v, r);
    }
  }
}

}  // namespace

void dot_scalar_poly_ifma(const uint64_t* const* inputs, const uint64_t* scalars, size_t count,
                          uint64_t* out, size_t n, uint64_t q) {
  const DotConsts c(q);
  size_t i = 0;
  for (; i + 64 <= n; i += 64) dot_block<8, false>(inputs, scalars, count, out, i, 0xFF, c);
  for (; i + 8 <= n; i += 8) dot_block<1, false>(inputs, scalars, count, out, i, 0xFF, c);
  if (i < n) {
    dot_block<1, true>(inputs, scalars, count, out, i,
                       static_cast<__mmask8>((1u << (n - i)) - 1), c);
  }
}

}  // namespace heinfer::ring::simd
