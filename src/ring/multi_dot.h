// Internal: multi-output lazy-reduction dot products over one RNS limb (the linear layers
// of the encrypted backend): several outputs that read the same input list are accumulated
// together, so each input vector loaded from cache feeds several outputs (register blocking).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ring/modulus.h"

namespace heinfer::ring::detail {

/// For m = 0..outputs-1 and i < len:
///   out[m][i] = Σ_k inputs[k][i] · scalars[m][k]  (+ own[m][i] · own_scalars[m])  mod q
/// (k < count, count >= 1, scalars < q) with one reduction per output coefficient — the
/// same values as dot_scalar_poly per output. `own`, when given, adds one term of each
/// output's own (own[m] null: none), as a residual-fused convolution's Add needs. Uses
/// AVX-512 IFMA (4 outputs × 16 coefficients per register block; the own terms join the
/// same sums; for q < 2^31 exact 64-bit products, vpmuludq) when use_ifma(q) and
/// len % 16 == 0; AVX2 + FMA (4 outputs × 8
/// coefficients) when use_avx2(q) and len % 4 == 0; else dot_scalar_poly per output.
void multi_dot(const std::uint64_t* const* inputs, std::size_t count, const std::uint64_t* const* scalars,
               std::size_t outputs, std::uint64_t* const* out, std::size_t len, const Modulus& q,
               const std::uint64_t* const* own = nullptr, const std::uint64_t* own_scalars = nullptr);

/// Hints the cache to fetch words[0..len) (no effect on any result; any pointer, len >= 0).
inline void prefetch(const std::uint64_t* words, std::size_t len) {
  for (std::size_t i = 0; i < len; i += 8) __builtin_prefetch(words + i);
}

/// The IFMA kernel (multi_dot_avx512.cpp); preconditions as above, outputs <= 4.
void multi_dot_ifma(const std::uint64_t* const* inputs, std::size_t count, const std::uint64_t* const* scalars,
                    std::size_t outputs, std::uint64_t* const* out, std::size_t len, const Modulus& q,
                    const std::uint64_t* const* own, const std::uint64_t* own_scalars);

}  // namespace heinfer::ring::detail
