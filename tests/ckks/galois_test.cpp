// Rotations, conjugation and the packed elementwise product.
#include <gtest/gtest.h>

#include "test_util.h"

namespace heinfer::ckks::test {

namespace {
constexpr double kScale = 1099511627776.0;  // 2^40
// Observed max ≈ 5.5e-8 (N = 8192, scale 2^40). A key switch with non-centered digits
// gives ≈ 1.2e-6 (coherent error), so this bound also guards against that regression.
constexpr double kBound = 1.0 / (1 << 22);

const GaloisKeys& galois_8192() {
  static const GaloisKeys gk = bundle_8192().keygen->create_galois_keys({1, 2, -3, 100, 4095}, true);
  return gk;
}
}  // namespace

TEST(Galois, ElementsForSteps) {
  EXPECT_EQ(galois_element_for_step(0, 8192), 1u);
  EXPECT_EQ(galois_element_for_step(1, 8192), 5u);
  EXPECT_EQ(galois_element_for_step(2, 8192), 25u);
  EXPECT_EQ(galois_element_for_step(-1, 8192), galois_element_for_step(4095, 8192));
  EXPECT_EQ(galois_element_conjugate(8192), 16383u);
  const GaloisKeys& gk = galois_8192();
  EXPECT_EQ(gk.keys.size(), 6u);  // five rotations and the conjugation
  EXPECT_TRUE(gk.has(galois_element_for_step(-3, 8192)));
  EXPECT_TRUE(gk.has(16383u));
  EXPECT_FALSE(gk.has(galois_element_for_step(5, 8192)));
}

class RotateAtLevel : public ::testing::TestWithParam<size_t> {};

TEST_P(RotateAtLevel, RotationsMatchPermutedSlots) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n(), half = n / 2, level = GetParam();
  const auto v = random_reals(n, 1.0, 40 + level);
  Ciphertext c = b.encrypt_packed(v, kScale, level);
  for (int step : {1, 2, -3, 100, 4095}) {
    Ciphertext r;
    b.eval->rotate(c, step, galois_8192(), r);
    const auto d = b.decrypt_packed(r);
    std::vector<double> expect(n);
    for (size_t j = 0; j < half; ++j) {
      const size_t src = static_cast<size_t>((static_cast<int64_t>(j) + step % static_cast<int>(half) +
                                              static_cast<int64_t>(half)) % static_cast<int64_t>(half));
      expect[j] = v[src];
      expect[j + half] = v[src + half];
    }
    EXPECT_LT(max_abs_error(d, expect), kBound) << "step " << step;
  }
  Ciphertext r = c;
  b.eval->rotate_inplace(r, 2, galois_8192());
  b.eval->rotate_inplace(r, -3, galois_8192());
  b.eval->rotate_inplace(r, 1, galois_8192());
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), v), 3 * kBound);  // net rotation 0
}

TEST_P(RotateAtLevel, ConjugationNegatesImaginaryParts) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n(), level = GetParam();
  const auto v = random_reals(n, 1.0, 60 + level);
  Ciphertext c = b.encrypt_packed(v, kScale, level), r;
  b.eval->conjugate(c, galois_8192(), r);
  auto expect = v;
  for (size_t j = n / 2; j < n; ++j) expect[j] = -v[j];
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), expect), kBound);
}

INSTANTIATE_TEST_SUITE_P(Levels, RotateAtLevel, ::testing::Values(0, 2, 3));

TEST(Galois, PackedProductIsElementwiseOnAllNReals) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  const auto x = random_reals(n, 1.0, 1), y = random_reals(n, 1.0, 2);
  Ciphertext cx = b.encrypt_packed(x, kScale, 3), cy = b.encrypt_packed(y, kScale, 3), r;
  b.eval->multiply_packed(cx, cy, b.rk, galois_8192(), r);
  EXPECT_DOUBLE_EQ(r.scale(), 4 * kScale * kScale);
  b.eval->rescale_inplace(r);
  std::vector<double> xy(n), xx(n);
  for (size_t j = 0; j < n; ++j) {
    xy[j] = x[j] * y[j];
    xx[j] = x[j] * x[j];
  }
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), xy), kBound);
  b.eval->multiply_packed(cx, cx, b.rk, galois_8192(), r);  // square: one conjugation
  b.eval->rescale_inplace(r);
  EXPECT_LT(max_abs_error(b.decrypt_packed(r), xx), kBound);
}

TEST(Galois, AlphaTwoDigitsAtEveryLevel) {
  // Two special primes: digits of two primes, a partial digit at levels 0 and 2.
  const Bundle& b = bundle_8192_alpha2();
  const size_t n = b.ctx->n();
  const GaloisKeys gk = b.keygen->create_galois_keys({5});
  const double scale = std::ldexp(1.0, 30);
  for (size_t level = 0; level <= b.ctx->max_level(); ++level) {
    const auto x = random_reals(n / 2, 1.0, 80 + level);
    Ciphertext c = b.encrypt_real(x, scale, level), r;
    b.eval->rotate(c, 5, gk, r);
    std::vector<double> expect(n / 2), sq(n / 2);
    for (size_t j = 0; j < n / 2; ++j) {
      expect[j] = x[(j + 5) % (n / 2)];
      sq[j] = x[j] * x[j];
    }
    // Scale 2^30: fresh noise alone is ≈ 2^10 times larger than at 2^40.
    EXPECT_LT(max_abs_error(b.decrypt_real(r), expect), 1e-4) << level;
    if (level == 0) continue;  // a product at scale 2^60 needs more than q_0 ≈ 2^40
    b.eval->multiply_relinearize(c, c, b.rk, r);
    EXPECT_LT(max_abs_error(b.decrypt_real(r), sq), 1e-4) << level;
  }
}

}  // namespace heinfer::ckks::test
