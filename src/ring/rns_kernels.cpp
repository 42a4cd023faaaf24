#include "ring/rns_kernels.h"

#include <cstring>

#include "ring/cpu_features.h"
#include "ring/rns_kernels_impl.h"

namespace heinfer::ring::detail {

// The same loops built for each instruction set (rns_kernels_avx512.cpp, rns_kernels_avx2.cpp).
#define HEINFER_RNS_KERNELS(ns)                                                                  \
  namespace ns {                                                                                 \
  void reduce_sub_limb(const uint64_t* in, uint64_t m, uint64_t s, uint64_t* out, size_t n);     \
  void centered_limb(const uint64_t* in, uint64_t half, uint64_t m, uint64_t shift, uint64_t* out, \
                     size_t n);                                                                  \
  void add_small(uint64_t* x, const int8_t* e, uint64_t s, uint64_t q, size_t n);                \
  void sub_small(uint64_t* x, const int8_t* e, uint64_t s, uint64_t q, size_t n);                \
  }
HEINFER_RNS_KERNELS(avx512)
HEINFER_RNS_KERNELS(avx2)
#undef HEINFER_RNS_KERNELS

void reduce_sub_limb(const uint64_t* in, uint64_t from, uint64_t s, const Modulus& m,
                     uint64_t* out, size_t n) {
  const uint64_t mv = m.value;
  if (from > 2 * mv) {  // rare (very unequal primes): Barrett, scalar
    for (size_t x = 0; x < n; ++x) out[x] = sub_mod(reduce_64(in[x], m), s, mv);
  } else if (simd_path() == SimdPath::Ifma) {
    avx512::reduce_sub_limb(in, mv, s, out, n);
  } else if (simd_path() == SimdPath::Avx2) {
    avx2::reduce_sub_limb(in, mv, s, out, n);
  } else {
    impl::reduce_sub_limb(in, mv, s, out, n);
  }
}

void reduce_limb(const uint64_t* in, uint64_t from, const Modulus& m, uint64_t* out, size_t n) {
  if (from <= m.value) {
    if (in != out) std::memcpy(out, in, n * sizeof(uint64_t));
    return;
  }
  reduce_sub_limb(in, from, 0, m, out, n);
}

void centered_limb(const uint64_t* in, uint64_t q, const Modulus& m, uint64_t* out, size_t n) {
  const uint64_t mv = m.value, half = q >> 1;
  const uint64_t q_mod = reduce_64(q, m);
  const uint64_t shift = q_mod == 0 ? 0 : mv - q_mod;  // -q mod m
  if (q > 2 * mv) {
    for (size_t x = 0; x < n; ++x) {
      const uint64_t r = reduce_64(in[x], m) + (shift & impl::mask_if(in[x] > half));
      out[x] = r - (mv & impl::mask_if(r >= mv));
    }
  } else if (simd_path() == SimdPath::Ifma) {
    avx512::centered_limb(in, half, mv, shift, out, n);
  } else if (simd_path() == SimdPath::Avx2) {
    avx2::centered_limb(in, half, mv, shift, out, n);
  } else {
    impl::centered_limb(in, half, mv, shift, out, n);
  }
}

void add_small(uint64_t* x, const int8_t* e, uint64_t s, uint64_t q, size_t n) {
  switch (simd_path()) {
    case SimdPath::Ifma: return avx512::add_small(x, e, s, q, n);
    case SimdPath::Avx2: return avx2::add_small(x, e, s, q, n);
    case SimdPath::Portable: return impl::add_small(x, e, s, q, n);
  }
}

void sub_small(uint64_t* x, const int8_t* e, uint64_t s, uint64_t q, size_t n) {
  switch (simd_path()) {
    case SimdPath::Ifma: return avx512::sub_small(x, e, s, q, n);
    case SimdPath::Avx2: return avx2::sub_small(x, e, s, q, n);
    case SimdPath::Portable: return impl::sub_small(x, e, s, q, n);
  }
}

}  // namespace heinfer::ring::detail
