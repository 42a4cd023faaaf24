// AVX2 + FMA kernel of the multi-output dot product (simd_kernels_avx2.h): register blocks
// of up to 4 outputs × 8 coefficients. Each product x·s (x, s < q < 2^49) is reduced in its
// lane to (-3q/4, 3q/4) with the quotient fl(s/q) (fma_modular.h) and summed in a double;
// a sum is reduced back to |·| <= 3q/4 after every `chunk` terms, before it can pass 2^50.
// The single-output dot product keeps its sums in an L1 tile instead. Primes below 2^31
// take exact 64-bit integer products instead (IntFold below).
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "ring/fma_modular.h"
#include "ring/simd_kernels_avx2.h"

namespace heinfer::ring::avx2 {

namespace {

struct Scalars {
  const double* s;   // s[m·count + k]
  const double* sq;  // fl(s/q)
};

template <int M>
void block8(const uint64_t* const* inputs, size_t count, const Scalars& sc, uint64_t* const* out,
            size_t base, size_t chunk, __m256d q, __m256d q_inv) {
  __m256d acc[M][2];
  for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_pd();
  size_t pending = 0;
  for (size_t k = 0; k < count; ++k) {
    const uint64_t* p = inputs[k] + base;
    const __m256d x0 = load_words(p), x1 = load_words(p + 4);
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      const __m256d s = _mm256_broadcast_sd(sc.s + m * count + k);
      const __m256d sq = _mm256_broadcast_sd(sc.sq + m * count + k);
      acc[m][0] = _mm256_add_pd(acc[m][0], mul_mod(x0, s, sq, q));
      acc[m][1] = _mm256_add_pd(acc[m][1], mul_mod(x1, s, sq, q));
    }
    if (++pending == chunk) {
      for (int m = 0; m < M; ++m) {
        acc[m][0] = reduce(acc[m][0], q, q_inv);
        acc[m][1] = reduce(acc[m][1], q, q_inv);
      }
      pending = 1;  // a reduced sum counts as one term
    }
  }
  for (int m = 0; m < M; ++m) {
    store_words(out[m] + base, normalize(acc[m][0], q, q_inv));
    store_words(out[m] + base + 4, normalize(acc[m][1], q, q_inv));
  }
}

template <int M>
void block4(const uint64_t* const* inputs, size_t count, const Scalars& sc, uint64_t* const* out,
            size_t base, size_t chunk, __m256d q, __m256d q_inv) {
  __m256d acc[M];
  for (int m = 0; m < M; ++m) acc[m] = _mm256_setzero_pd();
  size_t pending = 0;
  for (size_t k = 0; k < count; ++k) {
    const __m256d x = load_words(inputs[k] + base);
    for (int m = 0; m < M; ++m) {
      acc[m] = _mm256_add_pd(acc[m], mul_mod(x, _mm256_broadcast_sd(sc.s + m * count + k),
                                             _mm256_broadcast_sd(sc.sq + m * count + k), q));
    }
    if (++pending == chunk) {
      for (int m = 0; m < M; ++m) acc[m] = reduce(acc[m], q, q_inv);
      pending = 1;
    }
  }
  for (int m = 0; m < M; ++m) store_words(out[m] + base, normalize(acc[m], q, q_inv));
}

template <int M>
void run(const uint64_t* const* inputs, size_t count, const Scalars& sc, uint64_t* const* out,
         size_t len, size_t chunk, __m256d q, __m256d q_inv) {
  size_t base = 0;
  for (; base + 8 <= len; base += 8) block8<M>(inputs, count, sc, out, base, chunk, q, q_inv);
  if (base < len) block4<M>(inputs, count, sc, out, base, chunk, q, q_inv);
}

// Primes below 2^31: the products x·s < 2^62 are exact in 64-bit integer lanes (vpmuludq),
// about four times cheaper than the double-precision product. Up to `fold` of them are
// summed in a 64-bit lane; the lane is then split as hi·2^32 + lo and folded into a double
// sum as hi·(2^32 mod q) + lo (fma_modular.h), which is kept reduced.
struct IntFold {
  __m256d q, q_inv, c32, c32q;
  size_t every;  // products per 64-bit lane before a fold: (every)·(q-1)^2 < 2^64
  explicit IntFold(uint64_t qv) {
    const double qd = static_cast<double>(qv);
    const auto r32 = static_cast<double>((uint64_t{1} << 32) % qv);
    q = _mm256_set1_pd(qd);
    q_inv = _mm256_set1_pd(1.0 / qd);
    c32 = _mm256_set1_pd(r32);
    c32q = _mm256_set1_pd(r32 / qd);
    every = static_cast<size_t>(~uint64_t{0} / ((qv - 1) * (qv - 1)));
  }
  /// sum + acc mod q, |result| <= 3q/4, for |sum| <= 3q/4 and any 64-bit acc.
  __m256d fold(__m256d sum, __m256i acc) const {
    const __m256d hi = to_double(_mm256_srli_epi64(acc, 32));
    const __m256d lo = to_double(_mm256_and_si256(acc, _mm256_set1_epi64x(0xffffffffLL)));
    const __m256d t = _mm256_add_pd(mul_mod(hi, c32, c32q, q), _mm256_add_pd(lo, sum));
    return reduce(t, q, q_inv);
  }
};

template <int M>
void int_block4(const uint64_t* const* inputs, size_t count, const uint64_t* const* scalars,
                uint64_t* const* out, size_t base, const IntFold& f) {
  __m256i acc[M];
  __m256d sum[M];
  for (int m = 0; m < M; ++m) {
    acc[m] = _mm256_setzero_si256();
    sum[m] = _mm256_setzero_pd();
  }
  size_t pending = 0;
  for (size_t k = 0; k < count; ++k) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(inputs[k] + base));
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      const __m256i s = _mm256_set1_epi64x(static_cast<long long>(scalars[m][k]));
      acc[m] = _mm256_add_epi64(acc[m], _mm256_mul_epu32(x, s));
    }
    if (++pending == f.every) {
      for (int m = 0; m < M; ++m) {
        sum[m] = f.fold(sum[m], acc[m]);
        acc[m] = _mm256_setzero_si256();
      }
      pending = 0;
    }
  }
  for (int m = 0; m < M; ++m) {
    store_words(out[m] + base, normalize(f.fold(sum[m], acc[m]), f.q, f.q_inv));
  }
}

template <int M>
void run_int(const uint64_t* const* inputs, size_t count, const uint64_t* const* scalars,
             uint64_t* const* out, size_t len, const IntFold& f) {
  for (size_t base = 0; base < len; base += 4) int_block4<M>(inputs, count, scalars, out, base, f);
}

}  // namespace

void multi_dot(const uint64_t* const* inputs, size_t count, const uint64_t* const* scalars,
               size_t outputs, uint64_t* const* out, size_t len, uint64_t q) {
  if (q < kIntegerProductBound) {
    const IntFold f(q);
    for (size_t m0 = 0; m0 < outputs; m0 += 4) {
      switch (std::min<size_t>(4, outputs - m0)) {
        case 4: run_int<4>(inputs, count, scalars + m0, out + m0, len, f); break;
        case 3: run_int<3>(inputs, count, scalars + m0, out + m0, len, f); break;
        case 2: run_int<2>(inputs, count, scalars + m0, out + m0, len, f); break;
        default: run_int<1>(inputs, count, scalars + m0, out + m0, len, f); break;
      }
    }
    return;
  }
  const double qv = static_cast<double>(q);
  // |sum| <= terms·(3q/4 + 1) must stay <= 2^50 (q < 2^49: at least two terms).
  const auto chunk = static_cast<size_t>(0x1p50 / (0.75 * qv + 1.0));
  thread_local std::vector<double> buffer;
  buffer.resize(2 * count * std::min<size_t>(outputs, 4));
  const __m256d qd = _mm256_set1_pd(qv), qi = _mm256_set1_pd(1.0 / qv);
  for (size_t m0 = 0; m0 < outputs; m0 += 4) {
    const size_t mm = std::min<size_t>(4, outputs - m0);
    double* s = buffer.data();
    double* sq = s + count * mm;
    for (size_t m = 0; m < mm; ++m) {
      for (size_t k = 0; k < count; ++k) {
        s[m * count + k] = static_cast<double>(scalars[m0 + m][k]);
        sq[m * count + k] = s[m * count + k] / qv;
      }
    }
    const Scalars sc{s, sq};
    switch (mm) {
      case 4: run<4>(inputs, count, sc, out + m0, len, chunk, qd, qi); break;
      case 3: run<3>(inputs, count, sc, out + m0, len, chunk, qd, qi); break;
      case 2: run<2>(inputs, count, sc, out + m0, len, chunk, qd, qi); break;
      default: run<1>(inputs, count, sc, out + m0, len, chunk, qd, qi); break;
    }
  }
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
