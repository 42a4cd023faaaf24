// AVX2 + FMA kernels of the multi-output dot product (simd_kernels_avx2.h): exact 64-bit
// integer products for primes below 2^31, products reduced in double lanes below 2^49.
// The single-output dot product keeps its sums in an L1 tile.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "ring/aligned_memory.h"
#include "ring/fma_modular.h"
#include "ring/multi_dot.h"
#include "ring/simd_kernels_avx2.h"

namespace heinfer::ring::avx2 {

namespace {

// Blocking. A call reads `count` input streams (845 in a dense layer) and writes `outputs`
// sums (100 there) over `len` coefficients. Coefficients go in tiles of kTile and inputs in
// passes of kPass: the pass's inputs (kPass × kTile words, 16 KiB) stay in L1 while every
// output block of 4 reads them, and the partial sums of all outputs (kTile words each) stay
// in L1/L2 between passes. Each pass prefetches the next one's lines: the streams are too
// many for the hardware prefetchers. Register blocks: 4 outputs × 8 coefficients.
constexpr size_t kTile = 64;
constexpr size_t kPass = 32;

void prefetch_pass(const uint64_t* const* inputs, size_t k0, size_t k1, size_t base, size_t len) {
  for (size_t k = k0; k < k1; ++k) detail::prefetch(inputs[k] + base, len);
}

// What follows pass [.., k1) of the tile at `base` (tl coefficients): the next pass, or
// the first pass of the next tile.
void prefetch_next(const uint64_t* const* inputs, size_t count, size_t k1, size_t base, size_t tl, size_t len) {
  if (k1 < count) {
    prefetch_pass(inputs, k1, std::min(count, k1 + kPass), base, tl);
  } else if (base + kTile < len) {
    prefetch_pass(inputs, 0, std::min(count, kPass), base + kTile, std::min(kTile, len - base - kTile));
  }
}

// (h·2^32 + l) mod q for 64-bit sums h, l below 2^50, in doubles (fma_modular.h):
// |result| <= 1.2q. Shared by the integer and the split-product paths.
struct Recombine {
  __m256d q, q_inv, c32, c32q;
  explicit Recombine(uint64_t qv) {
    const double qd = static_cast<double>(qv);
    const auto r32 = static_cast<double>((uint64_t{1} << 32) % qv);
    q = _mm256_set1_pd(qd);
    q_inv = _mm256_set1_pd(1.0 / qd);
    c32 = _mm256_set1_pd(r32);
    c32q = _mm256_set1_pd(r32 / qd);
  }
  __m256d join(const uint64_t* h, const uint64_t* l) const {
    const __m256d hd = to_double(_mm256_load_si256(reinterpret_cast<const __m256i*>(h)));
    const __m256d ld = to_double(_mm256_load_si256(reinterpret_cast<const __m256i*>(l)));
    return _mm256_add_pd(mul_mod(hd, c32, c32q, q), reduce(ld, q, q_inv));
  }
};

// ---- Primes below 2^31: exact products in 64-bit integer lanes (vpmuludq). ----------------
// Up to `every` products are summed in a lane ((every)·(q-1)^2 < 2^64); the lane is then
// split as hi·2^32 + lo and both halves are added to 64-bit sums in memory, which only the
// last step reduces (Recombine).
inline void fold_split(__m256i acc, uint64_t* hi, uint64_t* lo) {
  const __m256i mask = _mm256_set1_epi64x(0xffffffffLL);
  auto* h = reinterpret_cast<__m256i*>(hi);
  auto* l = reinterpret_cast<__m256i*>(lo);
  _mm256_store_si256(h, _mm256_add_epi64(_mm256_load_si256(h), _mm256_srli_epi64(acc, 32)));
  _mm256_store_si256(l, _mm256_add_epi64(_mm256_load_si256(l), _mm256_and_si256(acc, mask)));
}

// Adds Σ_{k0 <= k < k1} inputs[k][base + i]·scalars[m][k] for i < 4·W to hi/lo[m·kTile + i].
template <int M, int W>
void int_block(const uint64_t* const* inputs, size_t k0, size_t k1, const uint64_t* const* scalars,
               size_t base, size_t every, uint64_t* hi, uint64_t* lo) {
  for (size_t s0 = k0; s0 < k1; s0 += every) {
    const size_t s1 = std::min(k1, s0 + every);
    __m256i acc[M][W];
    for (int m = 0; m < M; ++m) {
      for (int w = 0; w < W; ++w) acc[m][w] = _mm256_setzero_si256();
    }
    for (size_t k = s0; k < s1; ++k) {
      __m256i x[W];
      for (int w = 0; w < W; ++w) x[w] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(inputs[k] + base + 4 * w));
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const __m256i sv = _mm256_set1_epi64x(static_cast<long long>(scalars[m][k]));
        for (int w = 0; w < W; ++w) acc[m][w] = _mm256_add_epi64(acc[m][w], _mm256_mul_epu32(x[w], sv));
      }
    }
    for (int m = 0; m < M; ++m) {
      for (int w = 0; w < W; ++w) fold_split(acc[m][w], hi + m * kTile + 4 * w, lo + m * kTile + 4 * w);
    }
  }
}

template <int M>
void int_outputs(const uint64_t* const* inputs, size_t k0, size_t k1, const uint64_t* const* scalars, size_t len,
                 size_t base, size_t every, uint64_t* hi, uint64_t* lo) {
  size_t i = 0;
  for (; i + 8 <= len; i += 8) int_block<M, 2>(inputs, k0, k1, scalars, base + i, every, hi + i, lo + i);
  if (i < len) int_block<M, 1>(inputs, k0, k1, scalars, base + i, every, hi + i, lo + i);
}

void int_multi_dot(const uint64_t* const* inputs, size_t count, const uint64_t* const* scalars, size_t outputs,
                   uint64_t* const* out, size_t len, uint64_t qv) {
  const Recombine r(qv);
  const auto every = static_cast<size_t>(~uint64_t{0} / ((qv - 1) * (qv - 1)));
  thread_local std::vector<uint64_t, AlignedAllocator<uint64_t>> sums;
  sums.resize(2 * outputs * kTile);
  uint64_t* hi = sums.data();
  uint64_t* lo = hi + outputs * kTile;
  for (size_t base = 0; base < len; base += kTile) {
    const size_t tl = std::min(kTile, len - base);
    std::fill(sums.begin(), sums.end(), 0);
    for (size_t k0 = 0; k0 < count; k0 += kPass) {
      const size_t k1 = std::min(count, k0 + kPass);
      prefetch_next(inputs, count, k1, base, tl, len);
      for (size_t m0 = 0; m0 < outputs; m0 += 4) {
        const uint64_t* const* sc = scalars + m0;
        uint64_t* h = hi + m0 * kTile;
        uint64_t* l = lo + m0 * kTile;
        switch (std::min<size_t>(4, outputs - m0)) {
          case 4: int_outputs<4>(inputs, k0, k1, sc, tl, base, every, h, l); break;
          case 3: int_outputs<3>(inputs, k0, k1, sc, tl, base, every, h, l); break;
          case 2: int_outputs<2>(inputs, k0, k1, sc, tl, base, every, h, l); break;
          default: int_outputs<1>(inputs, k0, k1, sc, tl, base, every, h, l); break;
        }
      }
    }
    // hi, lo < (folds)·2^32 <= 2^50 (count is capped by the caller): exact in doubles.
    for (size_t m = 0; m < outputs; ++m) {
      for (size_t i = 0; i < tl; i += 4) {
        store_words(out[m] + base + i, normalize(r.join(hi + m * kTile + i, lo + m * kTile + i), r.q, r.q_inv));
      }
    }
  }
}

// ---- Primes below 2^49, small scalars: exact integer products of 24-bit halves. ----------
// When every scalar, centred (s_c in (-q/2, q/2)), has |s_c| < 2^31 (weights times a
// weight scale below 2^31: the usual case), x·s_c = xl·s' + 2^24·xh·s' - 2^31·x with
// x = xh·2^24 + xl (both below 2^25) and s' = s_c + 2^31 < 2^32: two vpmuludq per
// product, each below 2^57, summed in 64-bit lanes for up to 128 terms and split into
// 32-bit halves like the integer path; Σ x is shared by all outputs. About twice the rate
// of the double-precision products.
constexpr size_t kSplitEvery = 128;           // 128·(2^25 - 1)·(2^32 - 1) < 2^64
constexpr size_t kMaxSplitCount = size_t{1} << 14;  // Σ x < 2^63 in one 64-bit lane

bool small_scalars(const uint64_t* const* scalars, size_t outputs, size_t count, uint64_t q, uint64_t* shifted) {
  const uint64_t half = q / 2, bound = uint64_t{1} << 31;
  for (size_t m = 0; m < outputs; ++m) {
    for (size_t k = 0; k < count; ++k) {
      const uint64_t v = scalars[m][k];
      const bool negative = v > half;
      const uint64_t magnitude = negative ? q - v : v;
      if (magnitude >= bound) return false;
      shifted[m * count + k] = negative ? bound - magnitude : bound + magnitude;  // s_c + 2^31
    }
  }
  return true;
}

template <int M>
void split_block(const uint64_t* const* inputs, size_t k0, size_t k1, const uint64_t* sh, size_t count, size_t base,
                 uint64_t* sums) {
  const __m256i low24 = _mm256_set1_epi64x((1LL << 24) - 1);
  for (size_t s0 = k0; s0 < k1; s0 += kSplitEvery) {
    const size_t s1 = std::min(k1, s0 + kSplitEvery);
    __m256i lo[M], hi[M];
    for (int m = 0; m < M; ++m) lo[m] = hi[m] = _mm256_setzero_si256();
    for (size_t k = s0; k < s1; ++k) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(inputs[k] + base));
      const __m256i xl = _mm256_and_si256(x, low24), xh = _mm256_srli_epi64(x, 24);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const __m256i sv = _mm256_set1_epi64x(static_cast<long long>(sh[m * count + k]));
        lo[m] = _mm256_add_epi64(lo[m], _mm256_mul_epu32(xl, sv));
        hi[m] = _mm256_add_epi64(hi[m], _mm256_mul_epu32(xh, sv));
      }
    }
    // sums per output: [L_hi, L_lo, H_hi, H_lo] × kTile.
    for (int m = 0; m < M; ++m) {
      uint64_t* o = sums + m * 4 * kTile;
      fold_split(lo[m], o, o + kTile);
      fold_split(hi[m], o + 2 * kTile, o + 3 * kTile);
    }
  }
}

void split_multi_dot(const uint64_t* const* inputs, size_t count, const uint64_t* shifted, size_t outputs,
                     uint64_t* const* out, size_t len, uint64_t qv) {
  const Recombine p(qv);
  const double qd = static_cast<double>(qv);
  const __m256d c24 = _mm256_set1_pd(static_cast<double>((uint64_t{1} << 24) % qv));
  const __m256d c24q = _mm256_set1_pd(static_cast<double>((uint64_t{1} << 24) % qv) / qd);
  const __m256d c31 = _mm256_set1_pd(static_cast<double>((uint64_t{1} << 31) % qv));
  const __m256d c31q = _mm256_set1_pd(static_cast<double>((uint64_t{1} << 31) % qv) / qd);
  thread_local std::vector<uint64_t, AlignedAllocator<uint64_t>> sums, xsum;
  sums.resize(4 * outputs * kTile);
  xsum.resize(kTile);
  for (size_t base = 0; base < len; base += kTile) {
    const size_t tl = std::min(kTile, len - base);
    std::fill(sums.begin(), sums.end(), 0);
    for (size_t i = 0; i < tl; i += 4) {  // Σ_k x_k < 2^63
      __m256i a = _mm256_setzero_si256();
      for (size_t k = 0; k < count; ++k) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(inputs[k] + base + i)));
      }
      _mm256_store_si256(reinterpret_cast<__m256i*>(xsum.data() + i), a);
    }
    for (size_t k0 = 0; k0 < count; k0 += kPass) {
      const size_t k1 = std::min(count, k0 + kPass);
      prefetch_next(inputs, count, k1, base, tl, len);
      for (size_t m0 = 0; m0 < outputs; m0 += 4) {
        const uint64_t* sh = shifted + m0 * count;
        uint64_t* sm = sums.data() + m0 * 4 * kTile;
        for (size_t i = 0; i < tl; i += 4) {
          switch (std::min<size_t>(4, outputs - m0)) {
            case 4: split_block<4>(inputs, k0, k1, sh, count, base + i, sm + i); break;
            case 3: split_block<3>(inputs, k0, k1, sh, count, base + i, sm + i); break;
            case 2: split_block<2>(inputs, k0, k1, sh, count, base + i, sm + i); break;
            default: split_block<1>(inputs, k0, k1, sh, count, base + i, sm + i); break;
          }
        }
      }
    }
    const __m256i low32 = _mm256_set1_epi64x(0xffffffffLL);
    for (size_t i = 0; i < tl; i += 4) {
      const __m256i xs = _mm256_load_si256(reinterpret_cast<const __m256i*>(xsum.data() + i));
      alignas(32) uint64_t xh[4], xl[4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(xh), _mm256_srli_epi64(xs, 32));
      _mm256_store_si256(reinterpret_cast<__m256i*>(xl), _mm256_and_si256(xs, low32));
      const __m256d x = p.join(xh, xl);
      const __m256d x31 = mul_mod(x, c31, c31q, p.q);
      for (size_t m = 0; m < outputs; ++m) {
        const uint64_t* o = sums.data() + m * 4 * kTile + i;
        // |l| <= 0.6q after the reduction, so |t| <= 1.8q < 2^50.
        const __m256d l = reduce(p.join(o, o + kTile), p.q, p.q_inv), h = p.join(o + 2 * kTile, o + 3 * kTile);
        const __m256d t = _mm256_sub_pd(_mm256_add_pd(l, mul_mod(h, c24, c24q, p.q)), x31);
        store_words(out[m] + base + i, normalize(t, p.q, p.q_inv));
      }
    }
  }
}

// ---- Primes below 2^49: products reduced in lanes, summed in doubles. ---------------------
// Each product x·s is reduced to (-3q/4, 3q/4) with the quotient fl(s/q) (fma_modular.h) and
// summed; a sum is reduced back to |·| <= 3q/4 after every `chunk` terms, before it can pass
// 2^50, and at the end of every pass, when it goes back to memory (counting as one term).
template <int M, int W>
void fp_block(const uint64_t* const* inputs, size_t k0, size_t k1, const double* s, const double* sq, size_t kn,
              size_t base, size_t chunk, __m256d q, __m256d q_inv, double* sums) {
  __m256d acc[M][W];
  for (int m = 0; m < M; ++m) {
    for (int w = 0; w < W; ++w) acc[m][w] = _mm256_load_pd(sums + m * kTile + 4 * w);
  }
  size_t pending = 1;
  for (size_t k = k0; k < k1; ++k) {
    __m256d x[W];
    for (int w = 0; w < W; ++w) x[w] = load_words(inputs[k] + base + 4 * w);
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      const __m256d sv = _mm256_broadcast_sd(s + m * kn + (k - k0));
      const __m256d svq = _mm256_broadcast_sd(sq + m * kn + (k - k0));
      for (int w = 0; w < W; ++w) acc[m][w] = _mm256_add_pd(acc[m][w], mul_mod(x[w], sv, svq, q));
    }
    if (++pending == chunk) {
      for (int m = 0; m < M; ++m) {
        for (int w = 0; w < W; ++w) acc[m][w] = reduce(acc[m][w], q, q_inv);
      }
      pending = 1;
    }
  }
  for (int m = 0; m < M; ++m) {
    for (int w = 0; w < W; ++w) _mm256_store_pd(sums + m * kTile + 4 * w, reduce(acc[m][w], q, q_inv));
  }
}

template <int M>
void fp_outputs(const uint64_t* const* inputs, size_t k0, size_t k1, const double* s, const double* sq, size_t kn,
                size_t len, size_t base, size_t chunk, __m256d q, __m256d q_inv, double* sums) {
  size_t i = 0;
  for (; i + 8 <= len; i += 8) fp_block<M, 2>(inputs, k0, k1, s, sq, kn, base + i, chunk, q, q_inv, sums + i);
  if (i < len) fp_block<M, 1>(inputs, k0, k1, s, sq, kn, base + i, chunk, q, q_inv, sums + i);
}

void fp_multi_dot(const uint64_t* const* inputs, size_t count, const uint64_t* const* scalars, size_t outputs,
                  uint64_t* const* out, size_t len, uint64_t q) {
  const double qv = static_cast<double>(q);
  // |sum| <= terms·(3q/4 + 1) must stay <= 2^50 (q < 2^49: at least two terms).
  const auto chunk = static_cast<size_t>(0x1p50 / (0.75 * qv + 1.0));
  const __m256d qd = _mm256_set1_pd(qv), qi = _mm256_set1_pd(1.0 / qv);
  thread_local std::vector<double, AlignedAllocator<double>> sums, conv;
  sums.resize(outputs * kTile);
  conv.resize(2 * outputs * kPass);
  for (size_t base = 0; base < len; base += kTile) {
    const size_t tl = std::min(kTile, len - base);
    std::fill(sums.begin(), sums.end(), 0.0);
    for (size_t k0 = 0; k0 < count; k0 += kPass) {
      const size_t k1 = std::min(count, k0 + kPass), kn = k1 - k0;
      prefetch_next(inputs, count, k1, base, tl, len);
      // The pass's scalars and their quotients fl(s/q), as doubles: s[m·kn + j], sq likewise.
      double* s = conv.data();
      double* sq = s + outputs * kn;
      for (size_t m = 0; m < outputs; ++m) {
        for (size_t j = 0; j < kn; ++j) {
          s[m * kn + j] = static_cast<double>(scalars[m][k0 + j]);
          sq[m * kn + j] = s[m * kn + j] / qv;
        }
      }
      for (size_t m0 = 0; m0 < outputs; m0 += 4) {
        const double* sm = s + m0 * kn;
        const double* sqm = sq + m0 * kn;
        double* sum = sums.data() + m0 * kTile;
        switch (std::min<size_t>(4, outputs - m0)) {
          case 4: fp_outputs<4>(inputs, k0, k1, sm, sqm, kn, tl, base, chunk, qd, qi, sum); break;
          case 3: fp_outputs<3>(inputs, k0, k1, sm, sqm, kn, tl, base, chunk, qd, qi, sum); break;
          case 2: fp_outputs<2>(inputs, k0, k1, sm, sqm, kn, tl, base, chunk, qd, qi, sum); break;
          default: fp_outputs<1>(inputs, k0, k1, sm, sqm, kn, tl, base, chunk, qd, qi, sum); break;
        }
      }
    }
    for (size_t m = 0; m < outputs; ++m) {
      for (size_t i = 0; i < tl; i += 4) {
        store_words(out[m] + base + i, normalize(_mm256_load_pd(sums.data() + m * kTile + i), qd, qi));
      }
    }
  }
}

}  // namespace

void multi_dot(const uint64_t* const* inputs, size_t count, const uint64_t* const* scalars,
               size_t outputs, uint64_t* const* out, size_t len, uint64_t q) {
  if (q < kIntegerProductBound && count <= kMaxIntegerCount) return int_multi_dot(inputs, count, scalars, outputs, out, len, q);
  if (count <= kMaxSplitCount) {
    thread_local std::vector<uint64_t> shifted;
    shifted.resize(outputs * count);
    if (small_scalars(scalars, outputs, count, q, shifted.data())) {
      return split_multi_dot(inputs, count, shifted.data(), outputs, out, len, q);
    }
  }
  fp_multi_dot(inputs, count, scalars, outputs, out, len, q);
}

void dot_scalar_poly(const uint64_t* const* inputs, const uint64_t* scalars, size_t count,
                     uint64_t* out, size_t n, uint64_t q) {
  // Sums of one tile live in L1 and every input is read as one contiguous run per tile (one
  // stream at a time: a register block over many inputs would read them all at once).
  constexpr size_t kTile = 512;
  const double qv = static_cast<double>(q);
  const auto chunk = static_cast<size_t>(0x1p50 / (0.75 * qv + 1.0));
  const __m256d qd = _mm256_set1_pd(qv), qi = _mm256_set1_pd(1.0 / qv);
  alignas(32) double acc[kTile];
  for (size_t base = 0; base < n; base += kTile) {
    const size_t len = std::min(kTile, n - base);
    for (size_t i = 0; i < len; i += 4) _mm256_store_pd(acc + i, _mm256_setzero_pd());
    size_t pending = 0;
    for (size_t k = 0; k < count; ++k) {
      const double sd = static_cast<double>(scalars[k]);
      const __m256d s = _mm256_set1_pd(sd), sq = _mm256_set1_pd(sd / qv);
      const uint64_t* in = inputs[k] + base;
      const bool fold = ++pending == chunk;
      for (size_t i = 0; i < len; i += 4) {
        __m256d a = _mm256_add_pd(_mm256_load_pd(acc + i), mul_mod(load_words(in + i), s, sq, qd));
        if (fold) a = reduce(a, qd, qi);
        _mm256_store_pd(acc + i, a);
      }
      if (fold) pending = 1;  // a reduced sum counts as one term
    }
    for (size_t i = 0; i < len; i += 4) store_words(out + base + i, normalize(_mm256_load_pd(acc + i), qd, qi));
  }
}

}  // namespace heinfer::ring::avx2
