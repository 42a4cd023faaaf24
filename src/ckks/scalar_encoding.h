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

}  // namespace heinfer::ckks
