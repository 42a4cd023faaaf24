// Odd polynomials of degree 7 on a ciphertext, in 3 levels: the building block of the
// composite sign approximations of the model-private mode (plan/sign_approximation.h).
//
// p(x) = c₁x + c₃x³ + c₅x⁵ + c₇x⁷ = (c₁x + c₃x³) + x⁴·(c₅x + c₇x³), with
//   level 1: x² = x·x,           c·x (scalar products landing on x²'s scale)
//   level 2: x⁴ = x²·x²,         c₃x³ = (c₃x)·x², c₇x³ = (c₇x)·x², c₁x, c₅x
//   level 3: x⁴·(c₅x + c₇x³),    (c₁x + c₃x³) brought to the same scale
// The output lands on the input's scale; left alone, a product squares the scale's
// deviation from the primes, and a composite of five drifts by 2^100.
// 5 ciphertext products and depth 3 (the 4-product evaluation through x³ needs depth 4:
// a level is worth more than a product here). Every scalar is encoded at the scale that
// makes the following rescale land exactly on the scale of the term it is added to
// (the same rule as Evaluator::multiply_scalar_accumulate's tip), so sums never need
// an extra level for scale matching.
#pragma once

#include <array>

#include "ckks/ciphertext.h"
#include "ckks/evaluator.h"
#include "ckks/keys.h"

namespace heinfer::ckks {

/// out = p(x) for p(x) = c[0]·x + c[1]·x³ + c[2]·x⁵ + c[3]·x⁷, elementwise on the N/2
/// slots of a real-packed ciphertext. out is 3 levels below x, at exactly x's scale
/// (c₇x is encoded at the scale that makes it so), so composites do not drift.
/// Throws std::invalid_argument when x is below level 3 or not of size 2.
///
/// Real packing only: under complex packing a product needs a conjugation key switch
/// besides the relinearization (Evaluator::multiply_packed), so N/2 samples in real
/// packing cost no more per sample, and multiply_packed's integer grows 4-fold per
/// product, 4^7 after three levels (measured: an overflow at a 40-bit q_0).
void evaluate_odd_septic(const Evaluator& evaluator, const Ciphertext& x, const std::array<double, 4>& c,
                         const RelinKeys& relin_keys, Ciphertext& out);

/// The product of two ciphertexts at the same level, relinearized and rescaled (one
/// level).
void multiply_rescale(const Evaluator& evaluator, const Ciphertext& a, const Ciphertext& b, const RelinKeys& relin_keys,
                      Ciphertext& out);

/// out = value · a, one level below a, at exactly `target_scale` (the scalar is encoded
/// at target_scale · q_level / a.scale). Throws std::invalid_argument at level 0.
void multiply_scalar_to_scale(const Evaluator& evaluator, const Ciphertext& a, double value, double target_scale,
                              Ciphertext& out);

}  // namespace heinfer::ckks
