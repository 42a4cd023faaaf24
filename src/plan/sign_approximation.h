// Polynomial approximations of sign and ReLU for the model-private mode, chosen from a
// precision target rather than by hand per model.
//
// sign(x) on [-1, 1] is approximated by the composite p = f∘…∘f∘g∘…∘g of two odd
// polynomials of degree 7 (Cheon, Kim and Kim, "Efficient homomorphic comparison methods
// with optimal complexity", ASIACRYPT 2020, §3.1 for f_3 and §3.4 for g_3): g grows fast
// near 0 and maps [ε, 1] into [3/4, 1]; f then pulls [3/4, 1] to 1 with doubly
// exponential convergence. Each costs 3 levels and 5 ciphertext products on a ciphertext
// (ckks/odd_polynomial.h). Both map [-1, 1] into [-1, 1], so |p| <= 1 there.
//
// ReLU(x) = (x + x·sign(x))/2 on |x| <= B is approximated by (x + x·p(x/B))/2: for
// |x| >= εB its error is |x|·|1 - p|/2 <= B·2^-(α+1), and for |x| < εB it is at most
// |x| < εB. With ε = η and α + 1 = log2(1/η) the error is at most η·B, where η is the
// layer's relative precision target; one more level and product for x·p.
#pragma once

#include <array>

namespace heinfer::plan {

/// p(x) = c[0]·x + c[1]·x³ + c[2]·x⁵ + c[3]·x⁷.
struct OddSeptic {
  std::array<double, 4> c{};
  double operator()(double x) const;
  /// p'(x).
  double derivative(double x) const;
};

/// f_3 (Cheon et al. 2020, §3.1): (35x - 35x³ + 21x⁵ - 5x⁷)/16.
inline constexpr OddSeptic kSignF3{{35.0 / 16, -35.0 / 16, 21.0 / 16, -5.0 / 16}};
/// g_3 (Cheon et al. 2020, §3.4): (4589x - 16577x³ + 25614x⁵ - 12860x⁷)/1024.
inline constexpr OddSeptic kSignG3{{4589.0 / 1024, -16577.0 / 1024, 25614.0 / 1024, -12860.0 / 1024}};

/// The composite f^f_count ∘ g^g_count (g applied first).
struct SignComposite {
  int g_count = 0, f_count = 0;
  /// max |1 - p(x)| over [ε, 1], certified on a grid (choose_sign_composite).
  double max_error = 1.0;
  int compositions() const { return g_count + f_count; }
  int depth() const { return 3 * compositions(); }            ///< levels
  int multiplications() const { return 5 * compositions(); }  ///< ciphertext products
  double operator()(double x) const;
};

/// The composite with the fewest compositions (then the fewest g) such that
/// |1 - p(x)| <= 2^-alpha_bits for every x in [epsilon, 1] (p is odd: the same on
/// [-1, -ε]). Certified on 2^18 + 1 points of [ε, 1] with a first-order bound between
/// points (|1 - p(xᵢ)| + |p'(xᵢ)|·h, h the spacing). Throws std::invalid_argument for ε
/// outside [2^-20, 1/2] or α outside [1, 30], and when no composite of at most 16
/// compositions reaches the target.
SignComposite choose_sign_composite(double epsilon, int alpha_bits);

/// ReLU on |x| <= bound as (x + x·p(x/bound))/2 with an absolute error <= relative_error ×
/// bound (the layer's precision target η).
struct ReluApproximation {
  double bound = 1.0;
  SignComposite sign;
  double max_abs_error = 0;  ///< certified: bound · max(ε, sign.max_error / 2)
  int depth() const { return sign.depth() + 1; }  ///< levels: p, then x·p
  int multiplications() const { return sign.multiplications() + 1; }
  double operator()(double x) const;  ///< the approximation (plaintext)
};

/// ε = η and α = ceil(log2(1/η)) - 1 (file comment). Throws std::invalid_argument for a
/// bound that is not finite and positive or η outside [2^-19, 1/4].
ReluApproximation choose_relu_approximation(double bound, double relative_error);

}  // namespace heinfer::plan
