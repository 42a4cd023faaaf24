// Odd septics on ciphertexts (ckks/odd_polynomial.h): one polynomial and a composite of
// two, under real and complex packing, against the same polynomials in double.
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "ckks/odd_polynomial.h"
#include "test_util.h"

namespace heinfer::ckks {
namespace {

/// N = 4096 (insecure: tests only), chain {50, 30 x 6} + special {50}: depth 6.
const test::Bundle& deep_bundle() {
  static const test::Bundle b(test::make_context(4096, {50, 30, 30, 30, 30, 30, 30}, {50}, SecurityLevel::None));
  return b;
}

// g_3 and f_3 of Cheon, Kim and Kim (ASIACRYPT 2020), as plan/sign_approximation.h has them.
constexpr std::array<double, 4> kG{4589.0 / 1024, -16577.0 / 1024, 25614.0 / 1024, -12860.0 / 1024};
constexpr std::array<double, 4> kF{35.0 / 16, -35.0 / 16, 21.0 / 16, -5.0 / 16};

double septic(const std::array<double, 4>& c, double x) {
  const double x2 = x * x;
  return x * (c[0] + x2 * (c[1] + x2 * (c[2] + x2 * c[3])));
}

TEST(OddPolynomial, CompositeOfTwoUnderRealPacking) {
  const test::Bundle& b = deep_bundle();
  const std::vector<double> x = test::random_reals(2048, 1.0, 21);
  const Ciphertext cx = b.encrypt_real(x, 0x1p30, b.ctx->max_level());
  const RelinKeys& keys = b.rk;
  Ciphertext g, fg;
  evaluate_odd_septic(*b.eval, cx, kG, keys, g);
  EXPECT_EQ(g.level(), b.ctx->max_level() - 3);
  evaluate_odd_septic(*b.eval, g, kF, keys, fg);
  EXPECT_EQ(fg.level(), 0u);
  // Each septic lands exactly on its input's scale: composites do not drift.
  EXPECT_NEAR(g.scale() / cx.scale(), 1.0, 1e-12);
  EXPECT_NEAR(fg.scale() / cx.scale(), 1.0, 1e-12);
  const std::vector<double> got_g = b.decrypt_real(g), got = b.decrypt_real(fg);
  double err_g = 0, err = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    err_g = std::max(err_g, std::fabs(got_g[i] - septic(kG, x[i])));
    err = std::max(err, std::fabs(got[i] - septic(kF, septic(kG, x[i]))));
  }
  // |g'| <= 4.5 and |f'| <= 2.2 amplify the 30-bit encoding error a little.
  EXPECT_LT(err_g, 1e-4);
  EXPECT_LT(err, 1e-3);
}

TEST(OddPolynomial, OneSepticAt128BitParameters) {
  const test::Bundle& b = test::bundle_8192_alpha2();  // {40, 30, 30, 30}: depth 3
  const std::vector<double> x = test::random_reals(4096, 1.0, 22);
  const Ciphertext cx = b.encrypt_real(x, 0x1p30, b.ctx->max_level());
  Ciphertext y;
  evaluate_odd_septic(*b.eval, cx, kF, b.rk, y);
  EXPECT_EQ(y.level(), 0u);
  const std::vector<double> got = b.decrypt_real(y);
  double err = 0;
  for (std::size_t i = 0; i < x.size(); ++i) err = std::max(err, std::fabs(got[i] - septic(kF, x[i])));
  EXPECT_LT(err, 1e-4);
}

TEST(OddPolynomial, RefusesShallowCiphertexts) {
  const test::Bundle& b = deep_bundle();
  Ciphertext low = b.encrypt_real({0.5}, 0x1p30, 2);
  Ciphertext out;
  EXPECT_THROW(evaluate_odd_septic(*b.eval, low, kF, b.rk, out), std::invalid_argument);
}

}  // namespace
}  // namespace heinfer::ckks
