// Internal element-wise RNS glue kernels for the scheme layer (src/ckks: key switching, rescale,
// encryption): reductions between primes, centered lifts, small additive terms.
// Portable versions plus AVX2 and AVX-512 builds of the same branch-free source
// (rns_kernels_avx2.cpp, rns_kernels_avx512.cpp, auto-vectorised), selected by simd_path()
// (cpu_features.h); results are identical. Values are in [0, q) unless stated.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ring/modulus.h"

namespace heinfer::ring::detail {

/// out = in mod m, for in[x] < from.
void reduce_limb(const uint64_t* in, uint64_t from, const Modulus& m, uint64_t* out, size_t n);
/// out = (in mod m) - s mod m, for in[x] < from, s < m.
void reduce_sub_limb(const uint64_t* in, uint64_t from, uint64_t s, const Modulus& m,
                     uint64_t* out, size_t n);
/// out = (centered representative of in mod q, in (-q/2, q/2]) mod m.
void centered_limb(const uint64_t* in, uint64_t q, const Modulus& m, uint64_t* out, size_t n);
/// x = x + e + s mod q (e small signed, may be null; s < q).
void add_small(uint64_t* x, const int8_t* e, uint64_t s, uint64_t q, size_t n);
/// x = x - s - e mod q (e small signed, may be null; s < q).
void sub_small(uint64_t* x, const int8_t* e, uint64_t s, uint64_t q, size_t n);

}  // namespace heinfer::ring::detail
