// multiply_scalar_accumulate: against the naive sum (bit-exact) and against doubles.
#include <gtest/gtest.h>

#include "test_util.h"

namespace heinfer::ckks::test {

namespace {
constexpr double kScale = 1099511627776.0;  // 2^40
}

TEST(Accumulate, MatchesNaiveSumExactlyWithNegativeAndZeroWeights) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n(), k = 40;
  std::vector<Ciphertext> cts;
  std::vector<std::vector<double>> xs;
  for (size_t i = 0; i < k; ++i) {
    xs.push_back(random_reals(n, 1.0, 300 + i));
    cts.push_back(b.encrypt_packed(xs.back(), kScale, 2));
  }
  auto w = random_reals(k, 2.0, 9);
  w[3] = 0.0;
  w[7] = 0.0;
  w[11] = 1e-20;  // rounds to zero at the weight scale: skipped too
  const double ws = std::ldexp(1.0, 30);
  Ciphertext acc;
  b.eval->multiply_scalar_accumulate(cts, w, ws, acc);
  EXPECT_EQ(acc.level(), 2u);
  EXPECT_DOUBLE_EQ(acc.scale(), kScale * ws);

  Ciphertext naive, term;
  b.eval->multiply_scalar(cts[0], w[0], ws, naive);
  for (size_t i = 1; i < k; ++i) {
    b.eval->multiply_scalar(cts[i], w[i], ws, term);
    b.eval->add_inplace(naive, term);
  }
  EXPECT_EQ(acc.data(), naive.data());  // exact modular arithmetic: bit-identical

  std::vector<double> expect(n, 0.0);
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = 0; j < n; ++j) expect[j] += w[i] * xs[i][j];
  }
  // Weight rounding 2^-31 per term and 40 weighted fresh noises: observed ≈ 6e-8.
  EXPECT_LT(max_abs_error(b.decrypt_packed(acc), expect), 4e-7);
}

TEST(Accumulate, FiveThousandTerms) {
  const Bundle& b = bundle_2048_insecure();
  const size_t n = b.ctx->n(), distinct = 25, terms = 5000;
  std::vector<Ciphertext> cts;
  std::vector<std::vector<double>> xs;
  for (size_t i = 0; i < distinct; ++i) {
    xs.push_back(random_reals(n, 1.0, 500 + i));
    cts.push_back(b.encrypt_packed(xs.back(), kScale, 1));
  }
  std::vector<const Ciphertext*> inputs(terms);
  const auto w = random_reals(terms, 0.05, 10);
  std::vector<double> expect(n, 0.0);
  for (size_t t = 0; t < terms; ++t) {
    inputs[t] = &cts[t % distinct];
    for (size_t j = 0; j < n; ++j) expect[j] += w[t] * xs[t % distinct][j];
  }
  Ciphertext acc;
  b.eval->multiply_scalar_accumulate(inputs, w, kScale, acc);
  EXPECT_DOUBLE_EQ(acc.scale(), kScale * kScale);
  EXPECT_LT(max_abs_error(b.decrypt_packed(acc), expect), 1e-7);  // observed ≈ 7e-9
  b.eval->rescale_inplace(acc);
  EXPECT_LT(max_abs_error(b.decrypt_packed(acc), expect), 1e-7);
}

TEST(Accumulate, AllZeroWeightsAndAliasing) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  const auto x = random_reals(n, 1.0, 1), y = random_reals(n, 1.0, 2);
  std::vector<Ciphertext> cts = {b.encrypt_packed(x, kScale, 3), b.encrypt_packed(y, kScale, 3)};
  Ciphertext zero;
  b.eval->multiply_scalar_accumulate(cts, std::vector<double>{0.0, 0.0}, kScale, zero);
  EXPECT_TRUE(std::all_of(zero.data().begin(), zero.data().end(), [](uint64_t v) { return v == 0; }));
  // out aliases an input.
  std::vector<const Ciphertext*> in = {&cts[0], &cts[1]};
  b.eval->multiply_scalar_accumulate(in, std::vector<double>{0.5, -1.5}, kScale, cts[0]);
  std::vector<double> expect(n);
  for (size_t j = 0; j < n; ++j) expect[j] = 0.5 * x[j] - 1.5 * y[j];
  EXPECT_LT(max_abs_error(b.decrypt_packed(cts[0]), expect), 1.5e-7);  // observed ≈ 1.5e-8
}

TEST(Accumulate, RejectsMismatches) {
  const Bundle& b = bundle_8192();
  const auto x = random_reals(8, 1.0, 1);
  std::vector<Ciphertext> cts = {b.encrypt_real(x, kScale, 3), b.encrypt_real(x, kScale, 2)};
  Ciphertext out;
  EXPECT_THROW(b.eval->multiply_scalar_accumulate(cts, std::vector<double>{1, 1}, kScale, out),
               std::invalid_argument);
  cts[1] = b.encrypt_real(x, 2 * kScale, 3);
  EXPECT_THROW(b.eval->multiply_scalar_accumulate(cts, std::vector<double>{1, 1}, kScale, out),
               std::invalid_argument);
  EXPECT_THROW(b.eval->multiply_scalar_accumulate(cts, std::vector<double>{1}, kScale, out),
               std::invalid_argument);
  EXPECT_THROW(b.eval->multiply_scalar_accumulate(std::span<const Ciphertext>(),
                                                  std::span<const double>(), kScale, out),
               std::invalid_argument);
  b.eval->multiply(cts[0], cts[0], cts[1]);  // size 3 vs size 2
  cts[1].set_scale(kScale);
  EXPECT_THROW(b.eval->multiply_scalar_accumulate(cts, std::vector<double>{1, 1}, kScale, out),
               std::invalid_argument);
}

}  // namespace heinfer::ckks::test
