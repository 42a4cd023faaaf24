// AVX2 + FMA element-wise kernels of poly_arith.h (simd_kernels_avx2.h). Additions and
// subtractions stay in 64-bit integer lanes (values below 2^61, so signed compares are
// exact); products go through doubles (fma_modular.h). Tails shorter than 4 words use the
// portable arithmetic one word at a time.
#include <immintrin.h>

#include "ring/fma_modular.h"
#include "ring/simd_kernels_avx2.h"

namespace heinfer::ring::avx2 {

namespace {

inline __m256i load(const uint64_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
inline void store(uint64_t* p, __m256i x) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), x); }

/// s in [0, 2q) to [0, q): subtract q where s > q - 1.
inline __m256i reduce_once(__m256i s, __m256i q_minus_1, __m256i q) {
  return _mm256_sub_epi64(s, _mm256_and_si256(_mm256_cmpgt_epi64(s, q_minus_1), q));
}

// body(i) on every whole block of 4 words.
template <typename Body>
void blocks(size_t n, Body body) {
  for (size_t i = 0; i + 4 <= n; i += 4) body(i);
}

// scalar(i) on the words after the last whole block.
template <typename Scalar>
void tail(size_t n, Scalar scalar) {
  for (size_t i = n & ~size_t{3}; i < n; ++i) scalar(i);
}

}  // namespace

void add_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q) {
  const __m256i qv = _mm256_set1_epi64x(static_cast<long long>(q));
  const __m256i qm1 = _mm256_set1_epi64x(static_cast<long long>(q - 1));
  blocks(n, [&](size_t i) { store(out + i, reduce_once(_mm256_add_epi64(load(a + i), load(b + i)), qm1, qv)); });
  tail(n, [&](size_t i) { const uint64_t s = a[i] + b[i]; out[i] = s >= q ? s - q : s; });
}

void sub_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q) {
  const __m256i qv = _mm256_set1_epi64x(static_cast<long long>(q));
  const __m256i zero = _mm256_setzero_si256();
  blocks(n, [&](size_t i) {
    const __m256i d = _mm256_sub_epi64(load(a + i), load(b + i));
    store(out + i, _mm256_add_epi64(d, _mm256_and_si256(_mm256_cmpgt_epi64(zero, d), qv)));
  });
  tail(n, [&](size_t i) { out[i] = a[i] >= b[i] ? a[i] - b[i] : a[i] + q - b[i]; });
}

void negate_poly(const uint64_t* a, uint64_t* out, size_t n, uint64_t q) {
  const __m256i qv = _mm256_set1_epi64x(static_cast<long long>(q));
  const __m256i zero = _mm256_setzero_si256();
  blocks(n, [&](size_t i) {
    const __m256i x = load(a + i);
    const __m256i nonzero = _mm256_xor_si256(_mm256_cmpeq_epi64(x, zero), _mm256_set1_epi64x(-1));
    store(out + i, _mm256_and_si256(_mm256_sub_epi64(qv, x), nonzero));
  });
  tail(n, [&](size_t i) { out[i] = a[i] == 0 ? 0 : q - a[i]; });
}

void add_scalar_poly(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n, uint64_t q) {
  const __m256i qv = _mm256_set1_epi64x(static_cast<long long>(q));
  const __m256i qm1 = _mm256_set1_epi64x(static_cast<long long>(q - 1));
  const __m256i s = _mm256_set1_epi64x(static_cast<long long>(scalar));
  blocks(n, [&](size_t i) { store(out + i, reduce_once(_mm256_add_epi64(load(a + i), s), qm1, qv)); });
  tail(n, [&](size_t i) { const uint64_t v = a[i] + scalar; out[i] = v >= q ? v - q : v; });
}

namespace {

// a·b mod q in (-3q/4, 3q/4) for a, b in [0, q), q < 2^49 (|a·b/q| < 2^49: the quotient is
// off by at most 1/2 + 2^-3).
inline __m256d product(__m256d a, __m256d b, __m256d q, __m256d q_inv) {
  const __m256d h = _mm256_mul_pd(a, b);
  const __m256d l = _mm256_fmsub_pd(a, b, h);
  const __m256d c = round_product(h, q_inv);
  return _mm256_add_pd(_mm256_fnmadd_pd(c, q, h), l);
}

}  // namespace

void multiply_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, uint64_t q) {
  const __m256d qd = _mm256_set1_pd(static_cast<double>(q));
  const __m256d qi = _mm256_set1_pd(1.0 / static_cast<double>(q));
  blocks(n, [&](size_t i) {
    store_words(out + i, lift(product(load_words(a + i), load_words(b + i), qd, qi), qd));
  });
  tail(n, [&](size_t i) {
    out[i] = static_cast<uint64_t>((static_cast<u128>(a[i]) * b[i]) % q);
  });
}

void multiply_add_poly(const uint64_t* a, const uint64_t* b, uint64_t* acc, size_t n, uint64_t q) {
  const __m256d qd = _mm256_set1_pd(static_cast<double>(q));
  const __m256d qi = _mm256_set1_pd(1.0 / static_cast<double>(q));
  blocks(n, [&](size_t i) {
    const __m256d r = _mm256_add_pd(product(load_words(a + i), load_words(b + i), qd, qi), load_words(acc + i));
    store_words(acc + i, correct(r, qd));
  });
  tail(n, [&](size_t i) {
    acc[i] = static_cast<uint64_t>((static_cast<u128>(a[i]) * b[i] + acc[i]) % q);
  });
}

void multiply_scalar_poly(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n, uint64_t q) {
  const double qv = static_cast<double>(q);
  const __m256d qd = _mm256_set1_pd(qv);
  const __m256d w = _mm256_set1_pd(static_cast<double>(scalar));
  const __m256d wq = _mm256_set1_pd(static_cast<double>(scalar) / qv);
  blocks(n, [&](size_t i) {
    store_words(out + i, lift(mul_mod(load_words(a + i), w, wq, qd), qd));
  });
  tail(n, [&](size_t i) {
    out[i] = static_cast<uint64_t>((static_cast<u128>(a[i]) * scalar) % q);
  });
}

}  // namespace heinfer::ring::avx2
