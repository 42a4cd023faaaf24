// Evaluator operations against plaintext double arithmetic, at several levels.
#include <gtest/gtest.h>

#include "test_util.h"

namespace heinfer::ckks::test {

namespace {

constexpr double kScale = 1099511627776.0;  // 2^40
// Error bounds (|x|, |y| <= 1, N = 8192, scale 2^40; max over all slots): observed
// ≈ 2e-8 for linear operations and for multiply + relinearize + rescale.
constexpr double kLinearBound = 1.0 / (1 << 23);
constexpr double kMultBound = 1.0 / (1 << 22);

std::vector<double> zip(const std::vector<double>& a, const std::vector<double>& b,
                        double (*f)(double, double)) {
  std::vector<double> r(a.size());
  for (size_t i = 0; i < a.size(); ++i) r[i] = f(a[i], b[i]);
  return r;
}

}  // namespace

class EvaluatorAtLevel : public ::testing::TestWithParam<size_t> {
 protected:
  const Bundle& b = bundle_8192();
  size_t level = GetParam();
  size_t n = b.ctx->n();
  std::vector<double> x = random_reals(n, 1.0, 1000 + GetParam());
  std::vector<double> y = random_reals(n, 1.0, 2000 + GetParam());
  Ciphertext cx = b.encrypt_packed(x, kScale, GetParam());
  Ciphertext cy = b.encrypt_packed(y, kScale, GetParam());
};

TEST_P(EvaluatorAtLevel, AddSubNegate) {
  Ciphertext r;
  b.eval->add(cx, cy, r);
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), zip(x, y, [](double a, double c) { return a + c; })),
            kLinearBound);
  b.eval->sub(cx, cy, r);
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), zip(x, y, [](double a, double c) { return a - c; })),
            kLinearBound);
  b.eval->negate(cx, r);
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), zip(x, y, [](double a, double) { return -a; })),
            kLinearBound);
  // In place, and out aliasing the second operand.
  Ciphertext a = cx, c = cy;
  b.eval->sub(a, c, c);
  EXPECT_LT(max_abs_error(b.decrypt_packed(c), zip(x, y, [](double u, double v) { return u - v; })),
            kLinearBound);
  b.eval->add_inplace(a, cy);
  EXPECT_LT(max_abs_error(b.decrypt_packed(a), zip(x, y, [](double u, double v) { return u + v; })),
            kLinearBound);
}

TEST_P(EvaluatorAtLevel, PlainOperations) {
  Plaintext py;
  b.encoder->encode_packed(y, kScale, level, py);
  Ciphertext r;
  b.eval->add_plain(cx, py, r);
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), zip(x, y, [](double a, double c) { return a + c; })),
            kLinearBound);
  b.eval->sub_plain(cx, py, r);
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), zip(x, y, [](double a, double c) { return a - c; })),
            kLinearBound);
  // multiply_plain is elementwise on real packing (complex slots multiply as complex).
  // At level 0 (Q ≈ 2^49) a product at scale 2^80 cannot fit.
  if (level == 0) return;
  const auto xr = random_reals(n / 2, 1.0, 1), yr = random_reals(n / 2, 1.0, 2);
  Ciphertext c = b.encrypt_real(xr, kScale, level);
  Plaintext p;
  b.encoder->encode(yr, kScale, level, p);
  b.eval->multiply_plain(c, p, r);
  EXPECT_DOUBLE_EQ(r.scale(), kScale * kScale);
  EXPECT_LT(max_abs_error(b.decrypt_real(r), zip(xr, yr, [](double a, double v) { return a * v; })),
            kLinearBound);
}

TEST_P(EvaluatorAtLevel, Scalars) {
  Ciphertext r;
  if (level > 0) {  // the product scale 2^70 needs more than q_0 ≈ 2^49
    b.eval->multiply_scalar(cx, -0.375, std::ldexp(1.0, 30), r);
    EXPECT_DOUBLE_EQ(r.scale(), kScale * std::ldexp(1.0, 30));
    EXPECT_LT(
        max_abs_error(b.decrypt_packed(r), zip(x, y, [](double a, double) { return -0.375 * a; })),
        kLinearBound);
  }
  b.eval->add_scalar_packed(cx, 0.8125, r);
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), zip(x, y, [](double a, double) { return a + 0.8125; })),
            kLinearBound);
  // add_scalar adds to the real part only: the first half of the packed reals.
  b.eval->add_scalar(cx, 0.5, r);
  auto d = b.decrypt_packed(r);
  for (size_t j = 0; j < n; ++j) ASSERT_NEAR(d[j], x[j] + (j < n / 2 ? 0.5 : 0.0), kLinearBound);
  b.eval->multiply_by_i(cx, r);
  d = b.decrypt_packed(r);  // (a + ib)·i = -b + ia
  for (size_t j = 0; j < n / 2; ++j) {
    ASSERT_NEAR(d[j], -x[j + n / 2], kLinearBound);
    ASSERT_NEAR(d[j + n / 2], x[j], kLinearBound);
  }
}

// Products and level changes need level >= 1 (q_0 ≈ 2^49 cannot hold scale 2^80).
class EvaluatorProductsAtLevel : public EvaluatorAtLevel {};

TEST_P(EvaluatorProductsAtLevel, MultiplyRelinearizeRescale) {
  const auto xr = random_reals(n / 2, 1.0, 5), yr = random_reals(n / 2, 1.0, 6);
  const auto xy = zip(xr, yr, [](double a, double c) { return a * c; });
  Ciphertext a = b.encrypt_real(xr, kScale, level), c = b.encrypt_real(yr, kScale, level);
  Ciphertext t;
  b.eval->multiply(a, c, t);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_LT(max_abs_error(b.decrypt_real(t), xy), kLinearBound);  // 3-part decryption
  Ciphertext r;
  b.eval->relinearize(t, b.rk, r);
  EXPECT_EQ(r.size(), 2u);
  EXPECT_LT(max_abs_error(b.decrypt_real(r), xy), kMultBound);
  b.eval->rescale_inplace(r);
  EXPECT_EQ(r.level(), level - 1);
  EXPECT_DOUBLE_EQ(r.scale(), kScale * kScale / static_cast<double>(b.ctx->modulus(level).value));
  EXPECT_LT(max_abs_error(b.decrypt_real(r), xy), kMultBound);

  Ciphertext fused;
  b.eval->multiply_relinearize(a, c, b.rk, fused);
  EXPECT_LT(max_abs_error(b.decrypt_real(fused), xy), kMultBound);
  // Squares through aliasing paths.
  const auto xx = zip(xr, xr, [](double u, double) { return u * u; });
  Ciphertext s = a;
  b.eval->multiply_inplace(s, s);
  b.eval->relinearize_inplace(s, b.rk);
  EXPECT_LT(max_abs_error(b.decrypt_real(s), xx), kMultBound);
  Ciphertext s2 = a;
  b.eval->multiply_relinearize(s2, s2, b.rk, s2);
  EXPECT_LT(max_abs_error(b.decrypt_real(s2), xx), kMultBound);
  Ciphertext s3 = c;
  b.eval->multiply(a, s3, s3);  // out aliases the second operand
  EXPECT_LT(max_abs_error(b.decrypt_real(s3), xy), kLinearBound);
}

TEST_P(EvaluatorProductsAtLevel, ModSwitchKeepsValueAndScale) {
  Ciphertext r;
  b.eval->mod_switch(cx, r);
  EXPECT_EQ(r.level(), level - 1);
  EXPECT_EQ(r.scale(), cx.scale());
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), x), kLinearBound);
  Ciphertext s = cx;
  b.eval->mod_switch_to_inplace(s, 0);
  EXPECT_EQ(s.level(), 0u);
  EXPECT_LT(max_abs_error(b.decrypt_packed(s), x), kLinearBound);
}

INSTANTIATE_TEST_SUITE_P(Levels, EvaluatorAtLevel, ::testing::Values(0, 1, 3));
INSTANTIATE_TEST_SUITE_P(Levels, EvaluatorProductsAtLevel, ::testing::Values(1, 2, 3));

TEST(Evaluator, RescaleRoundsExactly) {
  // Rescale of a known plaintext-like ciphertext: encrypt c·q_l·2^20 at scale q_l·2^20,
  // rescale -> scale 2^20 and value c.
  const Bundle& b = bundle_8192();
  const double ql = static_cast<double>(b.ctx->modulus(3).value);
  const auto x = random_reals(b.ctx->n(), 1.0, 77);
  Ciphertext c = b.encrypt_packed(x, ql * std::ldexp(1.0, 30), 3);
  b.eval->rescale_inplace(c);
  EXPECT_DOUBLE_EQ(c.scale(), std::ldexp(1.0, 30));
  // Scale 2^30 after the rescale: rounding noise (ε0 + ε1·s) ≈ 9e-6 max; bound 4e-5.
  EXPECT_LT(max_abs_error(b.decrypt_packed(c), x), 4e-5);
  EXPECT_THROW(
      {
        Ciphertext z = b.encrypt_packed(x, kScale, 0);
        b.eval->rescale_inplace(z);
      },
      std::invalid_argument);
}

TEST(Evaluator, DepthThreeChainToLevelZero) {
  // ((x^2)·y)^2 + x with rescales: exercises every level of the chain.
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  const auto x = random_reals(n / 2, 1.0, 8), y = random_reals(n / 2, 1.0, 9);
  Ciphertext cx = b.encrypt_real(x, kScale, 3), cy = b.encrypt_real(y, kScale, 3);
  Ciphertext t;
  b.eval->multiply_relinearize(cx, cx, b.rk, t);
  b.eval->rescale_inplace(t);  // level 2
  Ciphertext cy2 = cy;
  b.eval->mod_switch_to_inplace(cy2, 2);
  cy2.set_scale(t.scale());  // scales differ by q_3/2^40 ≈ 1 ± 2^-17: fold into the error
  b.eval->multiply_relinearize(t, cy2, b.rk, t);
  b.eval->rescale_inplace(t);  // level 1
  b.eval->multiply_relinearize(t, t, b.rk, t);
  b.eval->rescale_inplace(t);  // level 0
  EXPECT_EQ(t.level(), 0u);
  Ciphertext cx0 = cx;
  b.eval->mod_switch_to_inplace(cx0, 0);
  cx0.set_scale(t.scale());
  b.eval->add_inplace(t, cx0);
  const auto d = b.decrypt_real(t);
  double err = 0;
  for (size_t i = 0; i < n / 2; ++i) {
    const double v = x[i] * x[i] * y[i];
    err = std::max(err, std::fabs(d[i] - (v * v + x[i])));
  }
  // Dominated by the set_scale shortcuts (relative drift ≈ 2^-20 per step): ≈ 6e-6.
  EXPECT_LT(err, 5e-5);
}

TEST(Evaluator, MismatchesAreClearErrors) {
  const Bundle& b = bundle_8192();
  const auto x = random_reals(16, 1.0, 1);
  Ciphertext a = b.encrypt_real(x, kScale, 3), c = b.encrypt_real(x, kScale, 2), r;
  try {
    b.eval->add(a, c, r);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("level mismatch (3 vs 2)"), std::string::npos) << e.what();
  }
  Ciphertext d = b.encrypt_real(x, 2 * kScale, 3);
  try {
    b.eval->sub(a, d, r);
    FAIL();
  } catch (const std::invalid_argument& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("scale mismatch"), std::string::npos) << m;
    EXPECT_NE(m.find("2^40"), std::string::npos) << m;
    EXPECT_NE(m.find("2^41"), std::string::npos) << m;
  }
  // Relative tolerance 1e-9: a tiny drift is accepted.
  d.set_scale(kScale * (1 + 1e-12));
  EXPECT_NO_THROW(b.eval->add(a, d, r));
  Plaintext p;
  b.encoder->encode(x, kScale, 2, p);
  EXPECT_THROW(b.eval->multiply_plain(a, p, r), std::invalid_argument);
  EXPECT_THROW(b.eval->multiply(a, c, r), std::invalid_argument);
  Ciphertext t;
  b.eval->multiply(a, a, t);
  EXPECT_THROW(b.eval->multiply(t, a, r), std::invalid_argument);  // size 3 input
  GaloisKeys none;
  EXPECT_THROW(b.eval->rotate(a, 1, none, r), std::invalid_argument);
  Ciphertext coeff = a;
  b.eval->transform_from_ntt_inplace(coeff);
  EXPECT_THROW(b.eval->add(coeff, coeff, r), std::invalid_argument);
  b.eval->transform_to_ntt_inplace(coeff);
  EXPECT_EQ(coeff.data(), a.data());
  const Bundle& other = bundle_2048_insecure();
  EXPECT_THROW(other.eval->add(a, a, r), std::invalid_argument);
}

}  // namespace heinfer::ckks::test
