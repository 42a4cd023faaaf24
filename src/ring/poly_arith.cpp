#include "ring/poly_arith.h"

#include <algorithm>
#include <vector>

#include "ring/cpu_features.h"
#include "ring/simd_kernels.h"
#include "ring/simd_kernels_avx2.h"

namespace heinfer::ring {

namespace {

// Branch-free forms of add_mod / sub_mod (same results) that compilers vectorize with the
// baseline instruction set: for x < 2^63 + q, "x - q wrapped" is detected by its top bit.
inline uint64_t reduce_once_bf(uint64_t s, uint64_t q) {  // s < 2q  ->  s mod q
  const uint64_t t = s - q;
  return t + (q & (0 - (t >> 63)));
}
inline uint64_t sub_mod_bf(uint64_t a, uint64_t b, uint64_t q) {  // a, b < q < 2^63
  const uint64_t d = a - b;
  return d + (q & (0 - (d >> 63)));
}

}  // namespace

// The add/sub/negate/add_scalar kernels need no products, so they take the selected SIMD
// path for every q; the others need q below the path's bound (cpu_features.h).

void add_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, const Modulus& q) {
  const uint64_t qv = q.value;
  if (simd_path() == SimdPath::Ifma) return simd::add_poly_avx512(a, b, out, n, qv);
  if (simd_path() == SimdPath::Avx2) return avx2::add_poly(a, b, out, n, qv);
  for (size_t i = 0; i < n; ++i) out[i] = reduce_once_bf(a[i] + b[i], qv);
}

void sub_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n, const Modulus& q) {
  const uint64_t qv = q.value;
  if (simd_path() == SimdPath::Ifma) return simd::sub_poly_avx512(a, b, out, n, qv);
  if (simd_path() == SimdPath::Avx2) return avx2::sub_poly(a, b, out, n, qv);
  for (size_t i = 0; i < n; ++i) out[i] = sub_mod_bf(a[i], b[i], qv);
}

void negate_poly(const uint64_t* a, uint64_t* out, size_t n, const Modulus& q) {
  const uint64_t qv = q.value;
  if (simd_path() == SimdPath::Ifma) return simd::negate_poly_avx512(a, out, n, qv);
  if (simd_path() == SimdPath::Avx2) return avx2::negate_poly(a, out, n, qv);
  for (size_t i = 0; i < n; ++i) out[i] = sub_mod_bf(0, a[i], qv);
}

void multiply_poly(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t n,
                   const Modulus& q) {
  if (use_ifma(q.value)) return simd::multiply_poly_ifma(a, b, out, n, q.value, q.bit_count);
  if (use_avx2(q.value)) return avx2::multiply_poly(a, b, out, n, q.value);
  for (size_t i = 0; i < n; ++i) out[i] = mul_mod(a[i], b[i], q);
}

void multiply_add_poly(const uint64_t* a, const uint64_t* b, uint64_t* acc, size_t n,
                       const Modulus& q) {
  const uint64_t qv = q.value;
  if (use_ifma(qv)) return simd::multiply_add_poly_ifma(a, b, acc, n, qv, q.bit_count);
  if (use_avx2(qv)) return avx2::multiply_add_poly(a, b, acc, n, qv);
  for (size_t i = 0; i < n; ++i) acc[i] = reduce_once_bf(acc[i] + mul_mod(a[i], b[i], q), qv);
}

void multiply_scalar_poly(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n,
                          const Modulus& q) {
  const uint64_t qv = q.value;
  if (use_ifma(qv)) return simd::multiply_scalar_poly_ifma(a, scalar, out, n, qv);
  if (use_avx2(qv)) return avx2::multiply_scalar_poly(a, scalar, out, n, qv);
  const uint64_t ws = shoup_precompute(scalar, qv);
  for (size_t i = 0; i < n; ++i) out[i] = mul_mod_shoup(a[i], scalar, ws, qv);
}

void add_scalar_poly(const uint64_t* a, uint64_t scalar, uint64_t* out, size_t n,
                     const Modulus& q) {
  const uint64_t qv = q.value;
  if (simd_path() == SimdPath::Ifma) return simd::add_scalar_poly_avx512(a, scalar, out, n, qv);
  if (simd_path() == SimdPath::Avx2) return avx2::add_scalar_poly(a, scalar, out, n, qv);
  for (size_t i = 0; i < n; ++i) out[i] = reduce_once_bf(a[i] + scalar, qv);
}

void dot_scalar_poly(const uint64_t* const* inputs, const uint64_t* scalars, size_t count,
                     uint64_t* out, size_t n, const Modulus& q) {
  if (use_ifma(q.value)) {
    return simd::dot_scalar_poly_ifma(inputs, scalars, count, out, n, q.value);
  }
  if (use_avx2(q.value) && n % 4 == 0) return avx2::dot_scalar_poly(inputs, scalars, count, out, n, q.value);
  // Each product is < q^2 < 2^(2·bits); this many fit in 128 bits before a reduction.
  const int product_bits = 2 * q.bit_count;
  const size_t terms_per_reduction =
      product_bits >= 127 ? 1 : static_cast<size_t>(std::min<u128>(u128{1} << (127 - product_bits), 1u << 30));
  constexpr size_t kBlock = 256;  // coefficients per block: accumulators stay in L1
  u128 acc[kBlock];
  for (size_t base = 0; base < n; base += kBlock) {
    const size_t len = std::min(kBlock, n - base);
    std::fill(acc, acc + len, u128{0});
    size_t pending = 0;
    for (size_t k = 0; k < count; ++k) {
      const uint64_t* in = inputs[k] + base;
      const uint64_t s = scalars[k];
      for (size_t i = 0; i < len; ++i) acc[i] += static_cast<u128>(in[i]) * s;
      if (++pending == terms_per_reduction) {
        for (size_t i = 0; i < len; ++i) acc[i] = reduce_128(acc[i], q);
        pending = 1;  // the reduced value counts as one term (< q < q^2)
      }
    }
    for (size_t i = 0; i < len; ++i) out[base + i] = reduce_128(acc[i], q);
  }
}

}  // namespace heinfer::ring
