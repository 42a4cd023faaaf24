#include "ckks/odd_polynomial.h"

#include <stdexcept>

namespace heinfer::ckks {

void multiply_rescale(const Evaluator& evaluator, const Ciphertext& a, const Ciphertext& b, const RelinKeys& relin_keys,
                      Ciphertext& out) {
  evaluator.multiply_relinearize(a, b, relin_keys, out);
  evaluator.rescale_inplace(out);
}

void multiply_scalar_to_scale(const Evaluator& evaluator, const Ciphertext& a, double value, double target_scale,
                              Ciphertext& out) {
  if (a.level() == 0) throw std::invalid_argument("multiply_scalar_to_scale: the ciphertext is at level 0");
  const double q = static_cast<double>(evaluator.context().modulus(a.level()).value);
  evaluator.multiply_scalar(a, value, target_scale * q / a.scale(), out);
  evaluator.rescale_inplace(out);
  out.set_scale(target_scale);  // exact up to the rounding of the product above (< 1e-15)
}

void evaluate_odd_septic(const Evaluator& evaluator, const Ciphertext& x, const std::array<double, 4>& c,
                         const RelinKeys& keys, Ciphertext& out) {
  if (x.size() != 2 || x.level() < 3) {
    throw std::invalid_argument("evaluate_odd_septic: needs a ciphertext of size 2 at level >= 3 (depth 3)");
  }
  // Level 1: x², c₃x on x²'s scale, and c₇x on the scale that makes the output's scale
  // x's: out = x⁴·(c₇x³) has scale s(x²)²/q₁ · s(c₇x)·s(x²)/q₁ / q₂ (q₁, q₂: the primes
  // the second and third rescales drop). Products square a scale's deviation from the
  // primes; without this a composite of five drifts by 2^100 (measured).
  Ciphertext x2;
  multiply_rescale(evaluator, x, x, keys, x2);
  const CKKSContext& ctx = evaluator.context();
  const double q1 = static_cast<double>(ctx.modulus(x.level() - 1).value);
  const double q2 = static_cast<double>(ctx.modulus(x.level() - 2).value);
  const double s2 = x2.scale();
  Ciphertext c3x, c7x;
  multiply_scalar_to_scale(evaluator, x, c[1], s2, c3x);
  multiply_scalar_to_scale(evaluator, x, c[3], x.scale() * (q1 / s2) * (q1 / s2) * (q2 / s2), c7x);
  // Level 2: x⁴, c₃x³, c₇x³; c₁x and c₅x on the scales of c₃x³ and c₇x³.
  Ciphertext x4, t3, t7;
  multiply_rescale(evaluator, x2, x2, keys, x4);
  multiply_rescale(evaluator, c3x, x2, keys, t3);
  multiply_rescale(evaluator, c7x, x2, keys, t7);
  Ciphertext x_low = x, t1, t5;
  evaluator.mod_switch_inplace(x_low);  // level - 1, so the scalar product lands on level 2
  multiply_scalar_to_scale(evaluator, x_low, c[0], t3.scale(), t1);
  multiply_scalar_to_scale(evaluator, x_low, c[2], t7.scale(), t5);
  evaluator.add_inplace(t3, t1);  // c₁x + c₃x³
  evaluator.add_inplace(t7, t5);  // c₅x + c₇x³
  // Level 3: x⁴·(c₅x + c₇x³), plus (c₁x + c₃x³) on its scale.
  multiply_rescale(evaluator, x4, t7, keys, out);
  Ciphertext low;
  multiply_scalar_to_scale(evaluator, t3, 1.0, out.scale(), low);
  evaluator.add_inplace(out, low);
}

}  // namespace heinfer::ckks
