// AVX-512 build of the RNS glue kernels (this file is compiled with -mavx512f etc.;
// called only when simd_enabled()). Same source as the portable path.
#include "ring/rns_kernels_impl.h"

namespace heinfer::ring::detail::avx512 {

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

}  // namespace heinfer::ring::detail::avx512
