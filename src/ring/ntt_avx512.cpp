// AVX-512 IFMA negacyclic NTT (algorithms: simd_kernels.h and ntt.h).
//
// 8 coefficients per 512-bit vector; values stay in [0, 4q) (forward) / [0, 2q) (inverse)
// with Harvey's lazy butterflies, q < 2^50.
//
// Stages with butterfly distance t >= 32 run as register passes of 1-3 stages (radix 2,
// 4, 8: 2, 4 or 8 vectors loaded once, twiddles broadcast per group). The five last forward
// stages (t = 16, 8, 4, 2, 1), and the five first inverse ones, run on 64 coefficients
// held in eight registers (fwd_last5 / inv_first5). For t < 8 the two inputs of a
// butterfly sit in the same vector, so a 16-coefficient chunk e[0..15] is kept as two
// vectors X, Y with X[l], Y[l] the two inputs of one butterfly, re-paired between stages
// by one shuffle per output vector. With the index of e written as bits b3 b2 b1 b0:
//   natural:   X = e[b3 = 0],  Y = e[b3 = 1],  lane = (b2 b1 b0)
//   layout A:  X = e[b2 = 0],  Y = e[b2 = 1],  lane = (b3 b1 b0)    stage t = 4
//   layout B:  X = e[b1 = 0],  Y = e[b1 = 1],  lane = (b3 b2 b0)    stage t = 2
//   layout C:  X = e[b0 = 0],  Y = e[b0 = 1],  lane = (b3 b2 b1)    stage t = 1
// natural <-> A is vshufi64x2, A <-> B a masked vpermq, B <-> C vpunpck{l,h}qdq (each an
// involution), C <-> natural a two-source vpermt2q. In layout C the twiddles of stage t = 1
// are contiguous in the table; for A and B they come from expanded tables (NttIfmaTables).
// The forward transform ends with the reduction to [0, q) in registers; the inverse one
// merges the factor 1/n into its last stage.
//
// Transforms larger than kBlock coefficients run breadth-first until one group fits in a
// block, then depth-first block by block (the block stays in L1/L2).
#include <immintrin.h>

// GCC 12's _mm512_undefined_epi32() (used inside the unmasked intrinsics) trips
// -Wmaybe-uninitialized once inlined (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "ring/simd_kernels.h"

namespace heinfer::ring::simd {

namespace {

constexpr uint64_t kMask52 = (uint64_t{1} << 52) - 1;
constexpr size_t kBlock = 4096;  // coefficients per depth-first block (32 KiB)

struct Consts {
  __m512i q, two_q, neg_q, mask;
  explicit Consts(uint64_t qv)
      : q(_mm512_set1_epi64(static_cast<long long>(qv))),
        two_q(_mm512_set1_epi64(static_cast<long long>(2 * qv))),
        neg_q(_mm512_set1_epi64(static_cast<long long>((uint64_t{1} << 52) - qv))),
        mask(_mm512_set1_epi64(static_cast<long long>(kMask52))) {}
};

inline __m512i bcast(const uint64_t* p) { return _mm512_set1_epi64(static_cast<long long>(*p)); }
inline __m512i load(const uint64_t* p) { return _mm512_loadu_si512(p); }
inline void store(uint64_t* p, __m512i v) { _mm512_storeu_si512(p, v); }

/// x·w mod q in [0, 2q) for x < 2^52, w < q, ws = floor(w·2^52/q).
inline __m512i mul_shoup(__m512i x, __m512i w, __m512i ws, const Consts& c) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i quot = _mm512_madd52hi_epu64(zero, x, ws);
  __m512i r = _mm512_madd52lo_epu64(zero, x, w);
  r = _mm512_madd52lo_epu64(r, quot, c.neg_q);
  return _mm512_and_si512(r, c.mask);
}

/// x mod^ bound: x in [0, 2·bound) -> [0, bound).
inline __m512i reduce_once(__m512i x, __m512i bound) {
  return _mm512_min_epu64(x, _mm512_sub_epi64(x, bound));
}

/// Cooley-Tukey: (X, Y) in [0, 4q) -> (X + wY, X - wY) in [0, 4q).
inline void fwd_butterfly(__m512i& x, __m512i& y, __m512i w, __m512i ws, const Consts& c) {
  const __m512i u = reduce_once(x, c.two_q);
  const __m512i v = mul_shoup(y, w, ws, c);
  x = _mm512_add_epi64(u, v);
  y = _mm512_sub_epi64(_mm512_add_epi64(u, c.two_q), v);
}

/// Gentleman-Sande: (X, Y) in [0, 2q) -> (X + Y, w(X - Y)) in [0, 2q).
inline void inv_butterfly(__m512i& x, __m512i& y, __m512i w, __m512i ws, const Consts& c) {
  const __m512i s = _mm512_add_epi64(x, y);
  const __m512i d = _mm512_sub_epi64(_mm512_add_epi64(x, c.two_q), y);
  x = reduce_once(s, c.two_q);
  y = mul_shoup(d, w, ws, c);
}

// Layout transitions (see the file comment).
inline void natural_to_a(__m512i& x, __m512i& y) {  // also A -> natural
  const __m512i lo = _mm512_shuffle_i64x2(x, y, 0x44);
  const __m512i hi = _mm512_shuffle_i64x2(x, y, 0xEE);
  x = lo;
  y = hi;
}
inline void a_to_b(__m512i& x, __m512i& y) {  // also B -> A
  const __m512i nx = _mm512_mask_permutex_epi64(x, 0xCC, y, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512i ny = _mm512_mask_permutex_epi64(y, 0x33, x, _MM_SHUFFLE(3, 2, 3, 2));
  x = nx;
  y = ny;
}
inline void b_to_c(__m512i& x, __m512i& y) {  // also C -> B
  const __m512i nx = _mm512_unpacklo_epi64(x, y);
  const __m512i ny = _mm512_unpackhi_epi64(x, y);
  x = nx;
  y = ny;
}
inline void c_to_natural(__m512i& x, __m512i& y) {
  const __m512i i0 = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);
  const __m512i i1 = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
  const __m512i v0 = _mm512_permutex2var_epi64(x, i0, y);
  const __m512i v1 = _mm512_permutex2var_epi64(x, i1, y);
  x = v0;
  y = v1;
}
inline void natural_to_c(__m512i& x, __m512i& y) {
  const __m512i ie = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i io = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
  const __m512i cx = _mm512_permutex2var_epi64(x, ie, y);
  const __m512i cy = _mm512_permutex2var_epi64(x, io, y);
  x = cx;
  y = cy;
}

/// R consecutive forward stages (radix 2^R, R <= 3) held in registers: the first stage has
/// m groups of distance t (t >> (R-1) >= 8); runs its groups [i_begin, i_end) and, inside
/// them, the following R - 1 stages.
template <int R>
inline void fwd_pass(uint64_t* a, size_t m, size_t t, size_t i_begin, size_t i_end,
                     const NttIfmaTables& tab, const Consts& c) {
  constexpr int V = 1 << R;
  const size_t d = t >> (R - 1);  // distance between the V vectors
  for (size_t i = i_begin; i < i_end; ++i) {
    uint64_t* base = a + 2 * i * t;
    for (size_t j = 0; j < d; j += 8) {
      __m512i x[V];
#pragma GCC unroll 8
      for (int k = 0; k < V; ++k) x[k] = load(base + j + k * d);
#pragma GCC unroll 3
      for (int s = 0; s < R; ++s) {
        const int half = V >> (s + 1);
#pragma GCC unroll 4
        for (int g = 0; g < (1 << s); ++g) {
          const size_t idx = (m << s) + (i << s) + g;
          const __m512i w = bcast(tab.w + idx), ws = bcast(tab.ws + idx);
#pragma GCC unroll 4
          for (int k = 0; k < half; ++k) {
            fwd_butterfly(x[2 * g * half + k], x[2 * g * half + k + half], w, ws, c);
          }
        }
      }
#pragma GCC unroll 8
      for (int k = 0; k < V; ++k) store(base + j + k * d, x[k]);
    }
  }
}

/// The three last forward stages (t = 4, 2, 1) and the final reduction to [0, q), on the
/// 16-coefficient chunks [k_begin, k_end).
inline void fwd_last3(uint64_t* a, size_t k_begin, size_t k_end, const NttIfmaTables& tab,
                      const Consts& c) {
  const uint64_t* w1 = tab.w + tab.n / 2;
  const uint64_t* w1s = tab.ws + tab.n / 2;
  for (size_t k = k_begin; k < k_end; ++k) {
    uint64_t* p = a + 16 * k;
    __m512i x = load(p), y = load(p + 8);
    natural_to_a(x, y);
    fwd_butterfly(x, y, load(tab.w4 + 8 * k), load(tab.w4s + 8 * k), c);
    a_to_b(x, y);
    fwd_butterfly(x, y, load(tab.w2 + 8 * k), load(tab.w2s + 8 * k), c);
    b_to_c(x, y);
    fwd_butterfly(x, y, load(w1 + 8 * k), load(w1s + 8 * k), c);
    x = reduce_once(reduce_once(x, c.two_q), c.q);
    y = reduce_once(reduce_once(y, c.two_q), c.q);
    c_to_natural(x, y);
    store(p, x);
    store(p + 8, y);
  }
}

/// R consecutive inverse stages in registers, ending with the stage of m groups of distance
/// t (so the first has distance t >> (R-1) >= 8); groups [i_begin, i_end) of that last stage.
/// kLast: the last stage is m = 1, with the factor 1/n merged and outputs in [0, q).
template <int R, bool kLast>
inline void inv_pass(uint64_t* a, size_t m, size_t t, size_t i_begin, size_t i_end,
                     const NttIfmaTables& tab, const Consts& c) {
  constexpr int V = 1 << R;
  const size_t d = t >> (R - 1);
  for (size_t i = i_begin; i < i_end; ++i) {
    uint64_t* base = a + 2 * i * t;
    for (size_t j = 0; j < d; j += 8) {
      __m512i x[V];
#pragma GCC unroll 8
      for (int k = 0; k < V; ++k) x[k] = load(base + j + k * d);
#pragma GCC unroll 3
      for (int s = R - 1; s >= (kLast ? 1 : 0); --s) {
        const int half = V >> (s + 1);
#pragma GCC unroll 4
        for (int g = 0; g < (1 << s); ++g) {
          const size_t idx = (m << s) + (i << s) + g;
          const __m512i w = bcast(tab.iw + idx), ws = bcast(tab.iws + idx);
#pragma GCC unroll 4
          for (int k = 0; k < half; ++k) {
            inv_butterfly(x[2 * g * half + k], x[2 * g * half + k + half], w, ws, c);
          }
        }
      }
      if constexpr (kLast) {
        const __m512i s = bcast(&tab.inv_n), ss = bcast(&tab.inv_n_s);
        const __m512i w = bcast(&tab.inv_n_w1), ws = bcast(&tab.inv_n_w1_s);
#pragma GCC unroll 4
        for (int k = 0; k < V / 2; ++k) {
          const __m512i sum = _mm512_add_epi64(x[k], x[k + V / 2]);
          const __m512i diff = _mm512_sub_epi64(_mm512_add_epi64(x[k], c.two_q), x[k + V / 2]);
          x[k] = reduce_once(mul_shoup(sum, s, ss, c), c.q);
          x[k + V / 2] = reduce_once(mul_shoup(diff, w, ws, c), c.q);
        }
      }
#pragma GCC unroll 8
      for (int k = 0; k < V; ++k) store(base + j + k * d, x[k]);
    }
  }
}

/// The three first inverse stages (t = 1, 2, 4) on the 16-coefficient chunks [k_begin, k_end).
inline void inv_first3(uint64_t* a, size_t k_begin, size_t k_end, const NttIfmaTables& tab,
                       const Consts& c) {
  const uint64_t* w1 = tab.iw + tab.n / 2;
  const uint64_t* w1s = tab.iws + tab.n / 2;
  for (size_t k = k_begin; k < k_end; ++k) {
    uint64_t* p = a + 16 * k;
    __m512i x = load(p), y = load(p + 8);
    natural_to_c(x, y);
    inv_butterfly(x, y, load(w1 + 8 * k), load(w1s + 8 * k), c);
    b_to_c(x, y);  // C -> B
    inv_butterfly(x, y, load(tab.iw2 + 8 * k), load(tab.iw2s + 8 * k), c);
    a_to_b(x, y);  // B -> A
    inv_butterfly(x, y, load(tab.iw4 + 8 * k), load(tab.iw4s + 8 * k), c);
    natural_to_a(x, y);  // A -> natural
    store(p, x);
    store(p + 8, y);
  }
}

/// The five last forward stages (t = 16, 8, 4, 2, 1) and the final reduction to [0, q), on
/// the 64-coefficient chunks [k_begin, k_end) (n >= 64): eight vectors in registers, four
/// independent butterflies per stage to hide the latency of the dependent stages.
inline void fwd_last5(uint64_t* a, size_t k_begin, size_t k_end, const NttIfmaTables& tab,
                      const Consts& c) {
  const size_t n = tab.n;
  const uint64_t* w16 = tab.w + n / 32;
  const uint64_t* w16s = tab.ws + n / 32;
  const uint64_t* w8 = tab.w + n / 16;
  const uint64_t* w8s = tab.ws + n / 16;
  const uint64_t* w4 = tab.w4;
  const uint64_t* w4s = tab.w4s;
  const uint64_t* w2 = tab.w2;
  const uint64_t* w2s = tab.w2s;
  const uint64_t* w1 = tab.w + n / 2;
  const uint64_t* w1s = tab.ws + n / 2;
  for (size_t k = k_begin; k < k_end; ++k) {
    uint64_t* p = a + 64 * k;
    __m512i x[4], y[4];  // 16-coefficient chunk g = 4k + h is (x[h], y[h]) in natural layout
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      x[h] = load(p + 16 * h);
      y[h] = load(p + 16 * h + 8);
    }
    // t = 16: groups 2k, 2k + 1 pair chunk 0 with 1 and chunk 2 with 3.
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i w = bcast(w16 + 2 * k + h), ws = bcast(w16s + 2 * k + h);
      fwd_butterfly(x[2 * h], x[2 * h + 1], w, ws, c);
      fwd_butterfly(y[2 * h], y[2 * h + 1], w, ws, c);
    }
    // t = 8: group 4k + h is chunk h.
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      fwd_butterfly(x[h], y[h], bcast(w8 + 4 * k + h), bcast(w8s + 4 * k + h), c);
    }
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) natural_to_a(x[h], y[h]);
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      fwd_butterfly(x[h], y[h], load(w4 + 32 * k + 8 * h), load(w4s + 32 * k + 8 * h), c);
    }
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) a_to_b(x[h], y[h]);
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      fwd_butterfly(x[h], y[h], load(w2 + 32 * k + 8 * h), load(w2s + 32 * k + 8 * h), c);
    }
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) b_to_c(x[h], y[h]);
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      fwd_butterfly(x[h], y[h], load(w1 + 32 * k + 8 * h), load(w1s + 32 * k + 8 * h), c);
    }
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      x[h] = reduce_once(reduce_once(x[h], c.two_q), c.q);
      y[h] = reduce_once(reduce_once(y[h], c.two_q), c.q);
      c_to_natural(x[h], y[h]);
      store(p + 16 * h, x[h]);
      store(p + 16 * h + 8, y[h]);
    }
  }
}

/// The five first inverse stages (t = 1, 2, 4, 8, 16) on the 64-coefficient chunks
/// [k_begin, k_end) (n >= 64, so the stage t = 16 is never the last one).
inline void inv_first5(uint64_t* a, size_t k_begin, size_t k_end, const NttIfmaTables& tab,
                       const Consts& c) {
  const size_t n = tab.n;
  const uint64_t* w16 = tab.iw + n / 32;
  const uint64_t* w16s = tab.iws + n / 32;
  const uint64_t* w8 = tab.iw + n / 16;
  const uint64_t* w8s = tab.iws + n / 16;
  const uint64_t* w4 = tab.iw4;
  const uint64_t* w4s = tab.iw4s;
  const uint64_t* w2 = tab.iw2;
  const uint64_t* w2s = tab.iw2s;
  const uint64_t* w1 = tab.iw + n / 2;
  const uint64_t* w1s = tab.iws + n / 2;
  for (size_t k = k_begin; k < k_end; ++k) {
    uint64_t* p = a + 64 * k;
    __m512i x[4], y[4];
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      x[h] = load(p + 16 * h);
      y[h] = load(p + 16 * h + 8);
      natural_to_c(x[h], y[h]);
    }
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      inv_butterfly(x[h], y[h], load(w1 + 32 * k + 8 * h), load(w1s + 32 * k + 8 * h), c);
    }
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) b_to_c(x[h], y[h]);  // C -> B
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      inv_butterfly(x[h], y[h], load(w2 + 32 * k + 8 * h), load(w2s + 32 * k + 8 * h), c);
    }
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) a_to_b(x[h], y[h]);  // B -> A
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      inv_butterfly(x[h], y[h], load(w4 + 32 * k + 8 * h), load(w4s + 32 * k + 8 * h), c);
    }
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) natural_to_a(x[h], y[h]);  // A -> natural
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      inv_butterfly(x[h], y[h], bcast(w8 + 4 * k + h), bcast(w8s + 4 * k + h), c);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m512i w = bcast(w16 + 2 * k + h), ws = bcast(w16s + 2 * k + h);
      inv_butterfly(x[2 * h], x[2 * h + 1], w, ws, c);
      inv_butterfly(y[2 * h], y[2 * h + 1], w, ws, c);
    }
#pragma GCC unroll 4
    for (int h = 0; h < 4; ++h) {
      store(p + 16 * h, x[h]);
      store(p + 16 * h + 8, y[h]);
    }
  }
}

/// Stages per register pass for `remaining` stages: 3, 3, ..., then 2 + 2 rather than 3 + 1.
inline int pass_size(int remaining) {
  return remaining >= 3 && remaining != 4 ? 3 : (remaining >= 2 ? 2 : 1);
}

/// Forward stages s in [s_begin, s_end) (stage s: m = 2^s groups of distance n >> (s+1)),
/// restricted to block b of `blocks` equal blocks.
void fwd_stages(uint64_t* a, int s_begin, int s_end, size_t blocks, size_t b,
                const NttIfmaTables& tab, const Consts& c) {
  for (int s = s_begin; s < s_end;) {
    const int r = pass_size(s_end - s);
    const size_t m = size_t{1} << s, t = tab.n >> (s + 1);
    const size_t i0 = b * (m / blocks), i1 = (b + 1) * (m / blocks);
    if (r == 3) fwd_pass<3>(a, m, t, i0, i1, tab, c);
    else if (r == 2) fwd_pass<2>(a, m, t, i0, i1, tab, c);
    else fwd_pass<1>(a, m, t, i0, i1, tab, c);
    s += r;
  }
}

/// Inverse stages s = s_end-1 down to s_begin, restricted to block b of `blocks`.
void inv_stages(uint64_t* a, int s_begin, int s_end, size_t blocks, size_t b,
                const NttIfmaTables& tab, const Consts& c) {
  for (int s = s_end; s > s_begin;) {
    const int r = pass_size(s - s_begin);
    const int last = s - r;  // the pass ends with stage `last`
    const size_t m = size_t{1} << last, t = tab.n >> (last + 1);
    const size_t i0 = b * (m / blocks), i1 = (b + 1) * (m / blocks);
    if (last == 0) {
      if (r == 3) inv_pass<3, true>(a, m, t, i0, i1, tab, c);
      else if (r == 2) inv_pass<2, true>(a, m, t, i0, i1, tab, c);
      else inv_pass<1, true>(a, m, t, i0, i1, tab, c);
    } else {
      if (r == 3) inv_pass<3, false>(a, m, t, i0, i1, tab, c);
      else if (r == 2) inv_pass<2, false>(a, m, t, i0, i1, tab, c);
      else inv_pass<1, false>(a, m, t, i0, i1, tab, c);
    }
    s = last;
  }
}

}  // namespace

void ntt_forward_ifma(const NttIfmaTables& tab, uint64_t* a) {
  const Consts c(tab.q);
  const size_t n = tab.n;
  const int log_n = __builtin_ctzll(n);
  if (n < 64) {
    fwd_stages(a, 0, log_n - 3, 1, 0, tab, c);
    fwd_last3(a, 0, n / 16, tab, c);
    return;
  }
  const int stages = log_n - 5;  // stages with distance >= 32, before fwd_last5
  const size_t blocks = n > kBlock ? n / kBlock : 1;
  const int split = __builtin_ctzll(blocks);  // stages s < split span more than one block
  fwd_stages(a, 0, split, 1, 0, tab, c);
  const size_t chunks = n / blocks / 64;
  for (size_t b = 0; b < blocks; ++b) {
    fwd_stages(a, split, stages, blocks, b, tab, c);
    fwd_last5(a, b * chunks, (b + 1) * chunks, tab, c);
  }
}

void ntt_inverse_ifma(const NttIfmaTables& tab, uint64_t* a) {
  const Consts c(tab.q);
  const size_t n = tab.n;
  const int log_n = __builtin_ctzll(n);
  if (n < 64) {
    inv_first3(a, 0, n / 16, tab, c);
    inv_stages(a, 0, log_n - 3, 1, 0, tab, c);
    return;
  }
  const int stages = log_n - 5;
  const size_t blocks = n > kBlock ? n / kBlock : 1;
  const int split = __builtin_ctzll(blocks);
  const size_t chunks = n / blocks / 64;
  for (size_t b = 0; b < blocks; ++b) {
    inv_first5(a, b * chunks, (b + 1) * chunks, tab, c);
    inv_stages(a, split, stages, blocks, b, tab, c);
  }
  inv_stages(a, 0, split, 1, 0, tab, c);
}

}  // namespace heinfer::ring::simd
