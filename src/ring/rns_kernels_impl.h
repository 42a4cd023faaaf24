// Internal: branch-free loop bodies shared by rns_kernels.cpp (portable),
// rns_kernels_avx2.cpp and rns_kernels_avx512.cpp (compiled with those instruction sets, so
// the loops vectorise). Only for the cases that need no 128-bit products (from <= 2m).
// Internal linkage (unnamed namespace): each file keeps its own build of the loops, so the
// linker never merges an AVX-512 copy into the portable path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heinfer::ring::detail::impl {
namespace {

inline uint64_t mask_if(bool c) { return uint64_t{0} - static_cast<uint64_t>(c); }
inline uint64_t small_mod(int8_t e, uint64_t q) {
  const uint64_t v = static_cast<uint64_t>(static_cast<int64_t>(e));  // two's complement
  return v + (q & mask_if(e < 0));
}

// from <= 2m.
inline void reduce_sub_limb(const uint64_t* __restrict in, uint64_t m, uint64_t s,
                            uint64_t* __restrict out, size_t n) {
  for (size_t x = 0; x < n; ++x) {
    const uint64_t v = in[x] - (m & mask_if(in[x] >= m));
    out[x] = v - s + (m & mask_if(v < s));
  }
}

// q <= 2m; shift = -q mod m.
inline void centered_limb(const uint64_t* __restrict in, uint64_t half, uint64_t m,
                          uint64_t shift, uint64_t* __restrict out, size_t n) {
  for (size_t x = 0; x < n; ++x) {
    const uint64_t v = in[x];
    uint64_t r = v - (m & mask_if(v >= m));
    r += shift & mask_if(v > half);
    out[x] = r - (m & mask_if(r >= m));
  }
}

inline void add_small(uint64_t* __restrict x, const int8_t* __restrict e, uint64_t s, uint64_t q,
                      size_t n) {
  for (size_t c = 0; c < n; ++c) {
    uint64_t v = x[c] + s;
    v -= q & mask_if(v >= q);
    if (e != nullptr) {
      v += small_mod(e[c], q);
      v -= q & mask_if(v >= q);
    }
    x[c] = v;
  }
}

inline void sub_small(uint64_t* __restrict x, const int8_t* __restrict e, uint64_t s, uint64_t q,
                      size_t n) {
  for (size_t c = 0; c < n; ++c) {
    uint64_t v = x[c] - s + (q & mask_if(x[c] < s));
    if (e != nullptr) {
      const uint64_t em = small_mod(e[c], q);
      v = v - em + (q & mask_if(v < em));
    }
    x[c] = v;
  }
}

}  // namespace
}  // namespace heinfer::ring::detail::impl

// The entry points of one instruction-set build: a file that defines
// HEINFER_RNS_KERNELS_ISA (avx2, avx512) before including this header gets them in
// namespace detail::<ISA>, declared in rns_kernels.cpp.
#ifdef HEINFER_RNS_KERNELS_ISA
namespace heinfer::ring::detail::HEINFER_RNS_KERNELS_ISA {
void reduce_sub_limb(const uint64_t* in, uint64_t m, uint64_t s, uint64_t* out, size_t n) {
  impl::reduce_sub_limb(in, m, s, out, n);
}
void centered_limb(const uint64_t* in, uint64_t half, uint64_t m, uint64_t shift, uint64_t* out,
                   size_t n) {
  impl::centered_limb(in, half, m, shift, out, n);
}
void add_small(uint64_t* x, const int8_t* e, uint64_t s, uint64_t q, size_t n) {
  impl::add_small(x, e, s, q, n);
}
void sub_small(uint64_t* x, const int8_t* e, uint64_t s, uint64_t q, size_t n) {
  impl::sub_small(x, e, s, q, n);
}
}  // namespace heinfer::ring::detail::HEINFER_RNS_KERNELS_ISA
#endif
