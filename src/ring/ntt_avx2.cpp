// AVX2 + FMA negacyclic NTT (simd_kernels_avx2.h): the butterflies of ntt.h on residues held
// in doubles. Stages of distance >= 4 run on whole vectors with a broadcast twiddle, two
// stages per pass over memory (radix 4) where both distances are >= 4; the stages of
// distance 2 and 1 run together in registers on 8 coefficients (128-bit lane swaps and
// unpacks). The word/double conversions and the final reduction to [0, q) are
// fused into the first and last passes; inputs are reduced only at the stages that
// ntt_reductions() marks, so that every value stays below 2^50 in magnitude.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "ring/fma_modular.h"
#include "ring/simd_kernels_avx2.h"

namespace heinfer::ring::avx2 {

namespace {

// Bound on |x·w mod q| (fma_modular.h, mul_mod and reduce) for |x| <= b, with slack.
double product_bound(double b, double q) { return q * (0.5 + b * 0x1p-52 * 1.001) + 1.0; }
constexpr double kLimit = 0x1p50;

struct Consts {
  __m256d q, q_inv;
  explicit Consts(const NttTables& t) : q(_mm256_set1_pd(t.q)), q_inv(_mm256_set1_pd(t.q_inv)) {}
};

// Forward (Cooley-Tukey) stage of distance `half` >= 4: x' = u + w·y, y' = u - w·y.
template <bool kFromWords, bool kReduce>
void forward_stage(const NttTables& t, const Consts& c, uint64_t* a, size_t m, size_t half) {
  double* d = reinterpret_cast<double*>(a);
  for (size_t i = 0; i < m; ++i) {
    const __m256d w = _mm256_broadcast_sd(t.w + m + i);
    const __m256d wq = _mm256_broadcast_sd(t.wq + m + i);
    double* x = d + 2 * i * half;
    double* y = x + half;
    for (size_t j = 0; j < half; j += 4) {
      __m256d u, v;
      if constexpr (kFromWords) {
        u = load_words(reinterpret_cast<const uint64_t*>(x + j));
        v = load_words(reinterpret_cast<const uint64_t*>(y + j));
      } else {
        u = _mm256_loadu_pd(x + j);
        v = _mm256_loadu_pd(y + j);
      }
      if constexpr (kReduce) u = reduce(u, c.q, c.q_inv);
      v = mul_mod(v, w, wq, c.q);
      _mm256_storeu_pd(x + j, _mm256_add_pd(u, v));
      _mm256_storeu_pd(y + j, _mm256_sub_pd(u, v));
    }
  }
}

// Two forward stages in one pass over memory: distances `half` and half/2 (half >= 8),
// with m groups at the first. Per group: (a0, a2), (a1, a3) with w[m + i], then (a0, a1)
// with w[2m + 2i] and (a2, a3) with w[2m + 2i + 1].
template <bool kFromWords, bool kReduce0, bool kReduce1>
void forward_pass4(const NttTables& t, const Consts& c, uint64_t* a, size_t m, size_t half) {
  double* d = reinterpret_cast<double*>(a);
  const size_t quarter = half / 2;
  for (size_t i = 0; i < m; ++i) {
    const __m256d w0 = _mm256_broadcast_sd(t.w + m + i), w0q = _mm256_broadcast_sd(t.wq + m + i);
    const __m256d w1 = _mm256_broadcast_sd(t.w + 2 * m + 2 * i);
    const __m256d w1q = _mm256_broadcast_sd(t.wq + 2 * m + 2 * i);
    const __m256d w2 = _mm256_broadcast_sd(t.w + 2 * m + 2 * i + 1);
    const __m256d w2q = _mm256_broadcast_sd(t.wq + 2 * m + 2 * i + 1);
    double* x0 = d + 2 * i * half;
    double* x1 = x0 + quarter;
    double* x2 = x0 + half;
    double* x3 = x2 + quarter;
    for (size_t j = 0; j < quarter; j += 4) {
      __m256d a0, a1, a2, a3;
      if constexpr (kFromWords) {
        a0 = load_words(reinterpret_cast<const uint64_t*>(x0 + j));
        a1 = load_words(reinterpret_cast<const uint64_t*>(x1 + j));
        a2 = load_words(reinterpret_cast<const uint64_t*>(x2 + j));
        a3 = load_words(reinterpret_cast<const uint64_t*>(x3 + j));
      } else {
        a0 = _mm256_loadu_pd(x0 + j);
        a1 = _mm256_loadu_pd(x1 + j);
        a2 = _mm256_loadu_pd(x2 + j);
        a3 = _mm256_loadu_pd(x3 + j);
      }
      if constexpr (kReduce0) {
        a0 = reduce(a0, c.q, c.q_inv);
        a1 = reduce(a1, c.q, c.q_inv);
      }
      __m256d v = mul_mod(a2, w0, w0q, c.q);
      a2 = _mm256_sub_pd(a0, v);
      a0 = _mm256_add_pd(a0, v);
      v = mul_mod(a3, w0, w0q, c.q);
      a3 = _mm256_sub_pd(a1, v);
      a1 = _mm256_add_pd(a1, v);
      if constexpr (kReduce1) {
        a0 = reduce(a0, c.q, c.q_inv);
        a2 = reduce(a2, c.q, c.q_inv);
      }
      v = mul_mod(a1, w1, w1q, c.q);
      _mm256_storeu_pd(x0 + j, _mm256_add_pd(a0, v));
      _mm256_storeu_pd(x1 + j, _mm256_sub_pd(a0, v));
      v = mul_mod(a3, w2, w2q, c.q);
      _mm256_storeu_pd(x2 + j, _mm256_add_pd(a2, v));
      _mm256_storeu_pd(x3 + j, _mm256_sub_pd(a2, v));
    }
  }
}

// Forward stages of distance 2 and 1 on blocks of 8, then [0, q) and words.
template <bool kReduce2, bool kReduce1>
void forward_last(const NttTables& t, const Consts& c, uint64_t* a) {
  double* d = reinterpret_cast<double*>(a);
  const double* w1 = t.w + t.n / 2;
  const double* w1q = t.wq + t.n / 2;
  for (size_t b = 0; b < t.n / 8; ++b) {
    double* p = d + 8 * b;
    const __m256d lo = _mm256_loadu_pd(p), hi = _mm256_loadu_pd(p + 4);
    // Distance 2: pairs (0,2), (1,3) | (4,6), (5,7).
    __m256d u = _mm256_permute2f128_pd(lo, hi, 0x20);  // 0 1 4 5
    __m256d v = _mm256_permute2f128_pd(lo, hi, 0x31);  // 2 3 6 7
    if constexpr (kReduce2) u = reduce(u, c.q, c.q_inv);
    v = mul_mod(v, _mm256_loadu_pd(t.w2 + 4 * b), _mm256_loadu_pd(t.w2q + 4 * b), c.q);
    const __m256d x2 = _mm256_add_pd(u, v), y2 = _mm256_sub_pd(u, v);  // 0 1 4 5 | 2 3 6 7
    // Distance 1: pairs (0,1), (2,3), (4,5), (6,7).
    u = _mm256_unpacklo_pd(x2, y2);  // 0 2 4 6
    v = _mm256_unpackhi_pd(x2, y2);  // 1 3 5 7
    if constexpr (kReduce1) u = reduce(u, c.q, c.q_inv);
    v = mul_mod(v, _mm256_loadu_pd(w1 + 4 * b), _mm256_loadu_pd(w1q + 4 * b), c.q);
    const __m256d x1 = normalize(_mm256_add_pd(u, v), c.q, c.q_inv);  // 0 2 4 6
    const __m256d y1 = normalize(_mm256_sub_pd(u, v), c.q, c.q_inv);  // 1 3 5 7
    const __m256d e = _mm256_unpacklo_pd(x1, y1);  // 0 1 4 5
    const __m256d f = _mm256_unpackhi_pd(x1, y1);  // 2 3 6 7
    store_words(a + 8 * b, _mm256_permute2f128_pd(e, f, 0x20));
    store_words(a + 8 * b + 4, _mm256_permute2f128_pd(e, f, 0x31));
  }
}

// Inverse stages of distance 1 and 2 on blocks of 8 read as words (Gentleman-Sande:
// x' = u + v, y' = w·(u - v)).
template <bool kReduce2>
void inverse_first(const NttTables& t, const Consts& c, uint64_t* a) {
  double* d = reinterpret_cast<double*>(a);
  for (size_t b = 0; b < t.n / 8; ++b) {
    const __m256d lo = load_words(a + 8 * b), hi = load_words(a + 8 * b + 4);
    // Distance 1 (inputs in [0, q), q < 2^49: no reduction needed).
    __m256d u = _mm256_unpacklo_pd(lo, hi);  // 0 4 2 6
    __m256d v = _mm256_unpackhi_pd(lo, hi);  // 1 5 3 7
    const __m256d x1 = _mm256_add_pd(u, v);
    const __m256d y1 = mul_mod(_mm256_sub_pd(u, v), _mm256_loadu_pd(t.iw1 + 4 * b),
                               _mm256_loadu_pd(t.iw1q + 4 * b), c.q);
    // Distance 2: pairs (0,2), (1,3) | (4,6), (5,7).
    const __m256d e = _mm256_unpacklo_pd(x1, y1);  // 0 1 2 3
    const __m256d f = _mm256_unpackhi_pd(x1, y1);  // 4 5 6 7
    u = _mm256_permute2f128_pd(e, f, 0x20);  // 0 1 4 5
    v = _mm256_permute2f128_pd(e, f, 0x31);  // 2 3 6 7
    if constexpr (kReduce2) {
      u = reduce(u, c.q, c.q_inv);
      v = reduce(v, c.q, c.q_inv);
    }
    const __m256d x2 = _mm256_add_pd(u, v);
    const __m256d y2 = mul_mod(_mm256_sub_pd(u, v), _mm256_loadu_pd(t.iw2 + 4 * b),
                               _mm256_loadu_pd(t.iw2q + 4 * b), c.q);
    _mm256_storeu_pd(d + 8 * b, _mm256_permute2f128_pd(x2, y2, 0x20));
    _mm256_storeu_pd(d + 8 * b + 4, _mm256_permute2f128_pd(x2, y2, 0x31));
  }
}

// Inverse stage of distance `half` (4 <= half < n/2).
template <bool kReduce>
void inverse_stage(const NttTables& t, const Consts& c, uint64_t* a, size_t m, size_t half) {
  double* d = reinterpret_cast<double*>(a);
  for (size_t i = 0; i < m; ++i) {
    const __m256d w = _mm256_broadcast_sd(t.iw + m + i);
    const __m256d wq = _mm256_broadcast_sd(t.iwq + m + i);
    double* x = d + 2 * i * half;
    double* y = x + half;
    for (size_t j = 0; j < half; j += 4) {
      __m256d u = _mm256_loadu_pd(x + j), v = _mm256_loadu_pd(y + j);
      if constexpr (kReduce) {
        u = reduce(u, c.q, c.q_inv);
        v = reduce(v, c.q, c.q_inv);
      }
      _mm256_storeu_pd(x + j, _mm256_add_pd(u, v));
      _mm256_storeu_pd(y + j, mul_mod(_mm256_sub_pd(u, v), w, wq, c.q));
    }
  }
}

// Two inverse stages in one pass: distances `half` (m groups) and 2·half. Per block of 4·half:
// (a0, a1) with iw[m + 2i], (a2, a3) with iw[m + 2i + 1], then (a0, a2), (a1, a3) with
// iw[m/2 + i].
template <bool kReduce0, bool kReduce1>
void inverse_pass4(const NttTables& t, const Consts& c, uint64_t* a, size_t m, size_t half) {
  double* d = reinterpret_cast<double*>(a);
  for (size_t i = 0; i < m / 2; ++i) {
    const __m256d w0 = _mm256_broadcast_sd(t.iw + m + 2 * i);
    const __m256d w0q = _mm256_broadcast_sd(t.iwq + m + 2 * i);
    const __m256d w1 = _mm256_broadcast_sd(t.iw + m + 2 * i + 1);
    const __m256d w1q = _mm256_broadcast_sd(t.iwq + m + 2 * i + 1);
    const __m256d w2 = _mm256_broadcast_sd(t.iw + m / 2 + i);
    const __m256d w2q = _mm256_broadcast_sd(t.iwq + m / 2 + i);
    double* x0 = d + 4 * i * half;
    double* x1 = x0 + half;
    double* x2 = x1 + half;
    double* x3 = x2 + half;
    for (size_t j = 0; j < half; j += 4) {
      __m256d a0 = _mm256_loadu_pd(x0 + j), a1 = _mm256_loadu_pd(x1 + j);
      __m256d a2 = _mm256_loadu_pd(x2 + j), a3 = _mm256_loadu_pd(x3 + j);
      if constexpr (kReduce0) {
        a0 = reduce(a0, c.q, c.q_inv);
        a1 = reduce(a1, c.q, c.q_inv);
        a2 = reduce(a2, c.q, c.q_inv);
        a3 = reduce(a3, c.q, c.q_inv);
      }
      __m256d s = _mm256_add_pd(a0, a1);
      a1 = mul_mod(_mm256_sub_pd(a0, a1), w0, w0q, c.q);
      a0 = s;
      s = _mm256_add_pd(a2, a3);
      a3 = mul_mod(_mm256_sub_pd(a2, a3), w1, w1q, c.q);
      a2 = s;
      if constexpr (kReduce1) {
        a0 = reduce(a0, c.q, c.q_inv);
        a1 = reduce(a1, c.q, c.q_inv);
        a2 = reduce(a2, c.q, c.q_inv);
        a3 = reduce(a3, c.q, c.q_inv);
      }
      _mm256_storeu_pd(x0 + j, _mm256_add_pd(a0, a2));
      _mm256_storeu_pd(x2 + j, mul_mod(_mm256_sub_pd(a0, a2), w2, w2q, c.q));
      _mm256_storeu_pd(x1 + j, _mm256_add_pd(a1, a3));
      _mm256_storeu_pd(x3 + j, mul_mod(_mm256_sub_pd(a1, a3), w2, w2q, c.q));
    }
  }
}

// Last inverse stage (distance n/2) with 1/n merged, then [0, q) and words.
template <bool kReduce>
void inverse_last(const NttTables& t, const Consts& c, uint64_t* a) {
  double* d = reinterpret_cast<double*>(a);
  const size_t half = t.n / 2;
  const __m256d s = _mm256_set1_pd(t.inv_n), sq = _mm256_set1_pd(t.inv_n_q);
  const __m256d w = _mm256_set1_pd(t.inv_n_w1), wq = _mm256_set1_pd(t.inv_n_w1_q);
  for (size_t j = 0; j < half; j += 4) {
    __m256d u = _mm256_loadu_pd(d + j), v = _mm256_loadu_pd(d + half + j);
    if constexpr (kReduce) {
      u = reduce(u, c.q, c.q_inv);
      v = reduce(v, c.q, c.q_inv);
    }
    const __m256d x = mul_mod(_mm256_add_pd(u, v), s, sq, c.q);
    const __m256d y = mul_mod(_mm256_sub_pd(u, v), w, wq, c.q);
    store_words(a + j, normalize(x, c.q, c.q_inv));
    store_words(a + half + j, normalize(y, c.q, c.q_inv));
  }
}

bool bit(uint32_t mask, int s) { return ((mask >> s) & 1U) != 0; }

}  // namespace

NttReductions ntt_reductions(size_t n, uint64_t q) {
  const int log_n = __builtin_ctzll(n);
  const double qd = static_cast<double>(q);
  NttReductions r;
  double b = qd;  // bound on |value| after each stage
  for (int s = 0; s < log_n; ++s) {
    const double v = product_bound(b, qd);
    double u = b;
    if (u + v > kLimit) {
      r.forward |= 1U << s;
      u = product_bound(b, qd);
    }
    b = u + v;
    if (b > kLimit) throw std::logic_error("AVX2 NTT: no reduction schedule for this prime");
  }
  b = qd;
  for (int s = 0; s < log_n; ++s) {
    if (2 * b > kLimit) {
      r.inverse |= 1U << s;
      b = product_bound(b, qd);
    }
    b = std::max(2 * b, product_bound(2 * b, qd));
    if (b > kLimit) throw std::logic_error("AVX2 NTT: no reduction schedule for this prime");
  }
  if ((r.inverse & 1U) != 0) throw std::logic_error("AVX2 NTT: prime too large for the first stage");
  return r;
}

namespace {

// A pass over memory: (tables, constants, data, groups at its first stage, distance).
using Pass = void (*)(const NttTables&, const Consts&, uint64_t*, size_t, size_t);

// The instantiations, indexed by their flags (bit 2: from words, bit 1: reduce at the first
// stage, bit 0: at the second).
constexpr Pass kForwardPass4[8] = {
    forward_pass4<false, false, false>, forward_pass4<false, false, true>,
    forward_pass4<false, true, false>,  forward_pass4<false, true, true>,
    forward_pass4<true, false, false>,  forward_pass4<true, false, true>,
    forward_pass4<true, true, false>,   forward_pass4<true, true, true>};
constexpr Pass kForwardStage[4] = {forward_stage<false, false>, forward_stage<false, true>,
                                    forward_stage<true, false>, forward_stage<true, true>};
constexpr Pass kInversePass4[4] = {inverse_pass4<false, false>, inverse_pass4<false, true>,
                                           inverse_pass4<true, false>, inverse_pass4<true, true>};
constexpr Pass kInverseStage[2] = {inverse_stage<false>, inverse_stage<true>};

}  // namespace

void ntt_forward(const NttTables& t, uint64_t* a) {
  const Consts c(t);
  const int log_n = __builtin_ctzll(t.n);
  const uint32_t red = t.forward_reduce;
  size_t m = 1, half = t.n / 2;
  int s = 0;
  while (half >= 4) {  // stages of distance >= 4: two per pass while both are >= 4
    const unsigned words = s == 0 ? 1U : 0U;
    if (half >= 8) {
      kForwardPass4[words << 2 | unsigned{bit(red, s)} << 1 | unsigned{bit(red, s + 1)}](t, c, a, m, half);
      half /= 4, m *= 4, s += 2;
    } else {
      kForwardStage[words << 1 | unsigned{bit(red, s)}](t, c, a, m, half);
      half /= 2, m *= 2, s += 1;
    }
  }
  const bool r2 = bit(red, log_n - 2), r1 = bit(red, log_n - 1);
  if (r2 && r1) forward_last<true, true>(t, c, a);
  else if (r2) forward_last<true, false>(t, c, a);
  else if (r1) forward_last<false, true>(t, c, a);
  else forward_last<false, false>(t, c, a);
}

void ntt_inverse(const NttTables& t, uint64_t* a) {
  const Consts c(t);
  const int log_n = __builtin_ctzll(t.n);
  const uint32_t red = t.inverse_reduce;
  if (bit(red, 1)) inverse_first<true>(t, c, a);
  else inverse_first<false>(t, c, a);
  int s = 2;
  size_t half = 4;
  while (half <= t.n / 4) {  // stages of distance 4 .. n/4: two per pass while both fit
    const size_t m = t.n / (2 * half);
    if (2 * half <= t.n / 4) {
      kInversePass4[unsigned{bit(red, s)} << 1 | unsigned{bit(red, s + 1)}](t, c, a, m, half);
      half *= 4, s += 2;
    } else {
      kInverseStage[bit(red, s) ? 1 : 0](t, c, a, m, half);
      half *= 2, s += 1;
    }
  }
  if (bit(red, log_n - 1)) inverse_last<true>(t, c, a);
  else inverse_last<false>(t, c, a);
}

}  // namespace heinfer::ring::avx2
