// Internal: inline AVX2 + FMA modular arithmetic on residues held in doubles, shared by the
// *_avx2.cpp kernels (include only from files compiled with -mavx2 -mfma). The algorithm,
// bounds and source: simd_kernels_avx2.h.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace heinfer::ring::avx2 {

inline constexpr double kTwo52 = 4503599627370496.0;  // 2^52
inline constexpr long long kTwo52Bits = 0x4330000000000000LL;  // the bits of 2^52

/// Words below 2^52 to doubles (exact).
inline __m256d to_double(__m256i x) {
  const __m256d biased = _mm256_castsi256_pd(_mm256_or_si256(x, _mm256_set1_epi64x(kTwo52Bits)));
  return _mm256_sub_pd(biased, _mm256_set1_pd(kTwo52));
}

/// Integral doubles in [0, 2^52) to words (exact).
inline __m256i to_word(__m256d x) {
  const __m256i bits = _mm256_castpd_si256(_mm256_add_pd(x, _mm256_set1_pd(kTwo52)));
  return _mm256_xor_si256(bits, _mm256_set1_epi64x(kTwo52Bits));
}

inline __m256d load_words(const uint64_t* p) {
  return to_double(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline void store_words(uint64_t* p, __m256d x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), to_word(x));
}

/// The integer nearest to x·y, for |x·y| < 2^51: x·y + 1.5·2^52 in one FMA lands where the
/// unit in the last place is 1, so its one rounding is to the nearest integer (an FMA and
/// a subtraction: cheaper than a multiply and vroundpd on most cores).
inline __m256d round_product(__m256d x, __m256d y) {
  const __m256d magic = _mm256_set1_pd(6755399441055744.0);  // 1.5·2^52
  return _mm256_sub_pd(_mm256_fmadd_pd(x, y, magic), magic);
}

/// x·w mod q, |result| <= q·(1/2 + |x|·2^-53), for |x| <= 2^50, 0 <= w < q, wq = fl(w/q).
inline __m256d mul_mod(__m256d x, __m256d w, __m256d wq, __m256d q) {
  const __m256d h = _mm256_mul_pd(x, w);
  const __m256d l = _mm256_fmsub_pd(x, w, h);
  const __m256d c = round_product(x, wq);
  return _mm256_add_pd(_mm256_fnmadd_pd(c, q, h), l);
}

/// x mod q, |result| <= q·(1/2 + |x|·2^-53), for |x| <= 2^50, q_inv = fl(1/q).
inline __m256d reduce(__m256d x, __m256d q, __m256d q_inv) {
  return _mm256_fnmadd_pd(round_product(x, q_inv), q, x);
}

/// x in (-q, q) to [0, q): adds q where x is negative.
inline __m256d lift(__m256d x, __m256d q) {
  return _mm256_add_pd(x, _mm256_and_pd(_mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ), q));
}

/// x mod q in [0, q), for |x| <= 2^50.
inline __m256d normalize(__m256d x, __m256d q, __m256d q_inv) { return lift(reduce(x, q, q_inv), q); }

/// x in (-q, 2q) to [0, q).
inline __m256d correct(__m256d x, __m256d q) {
  return lift(_mm256_sub_pd(x, _mm256_and_pd(_mm256_cmp_pd(x, q, _CMP_GE_OQ), q)), q);
}

}  // namespace heinfer::ring::avx2
