// Scalar encoding: a real constant c at scale Δ becomes the constant polynomial
// round(c·Δ), i.e. one residue per RNS limb; no FFT or NTT (a constant is the same
// value in every NTT slot).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ring/modulus.h"

namespace heinfer::ckks {

class CKKSContext;

/// out[i] = round(value · scale) mod q_i for i = 0..level. Exact for any magnitude:
/// |value·scale| >= 2^63 is split into a 53-bit integer mantissa times 2^e.
/// Throws std::invalid_argument if value·scale is not finite or |round(value·scale)|
/// >= Q_level / 2 (it would wrap).
void encode_scalar(const CKKSContext& context, double value, double scale, size_t level,
                   uint64_t* out);

/// round(x) mod q for an integral double x (|x| < 2^1024), exact.
uint64_t double_to_residue(double rounded, const ring::Modulus& q);

/// x mod q for a signed 64-bit x, exact; no reduction when |x| < q (small coefficients).
inline uint64_t int_to_residue(std::int64_t x, const ring::Modulus& q) {
  const uint64_t a = x < 0 ? uint64_t{0} - static_cast<uint64_t>(x) : static_cast<uint64_t>(x);
  const uint64_t r = a < q.value ? a : ring::reduce_64(a, q);
  return x < 0 ? ring::negate_mod(r, q.value) : r;
}

}  // namespace heinfer::ckks
