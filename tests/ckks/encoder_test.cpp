// Encoder: special FFT, round trips (real, complex, packed, scalar), exact CRT, overflow.
#include <gtest/gtest.h>

#include <complex>
#include <numbers>

#include "ckks/scalar_encoding.h"
#include "ckks/special_fft.h"
#include "ring/multiprecision.h"
#include "test_util.h"

namespace heinfer::ckks::test {

using cd = std::complex<double>;

TEST(SpecialFFT, ForwardIsEvaluationAtPowersOfFive) {
  const size_t n = 64, slots = n / 2;
  SpecialFFT fft(n);
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<double> m(n);
  for (auto& x : m) x = d(rng);
  std::vector<cd> u(slots);
  for (size_t k = 0; k < slots; ++k) u[k] = {m[k], m[k + slots]};
  fft.forward(u.data());
  uint64_t g = 1;
  for (size_t j = 0; j < slots; ++j) {
    cd expect = 0;  // m(ζ^g), ζ = exp(iπ/N)
    for (size_t k = 0; k < n; ++k) {
      expect += m[k] * std::polar(1.0, std::numbers::pi * static_cast<double>(g * k % (2 * n)) / n);
    }
    EXPECT_NEAR(std::abs(u[j] - expect), 0.0, 1e-12) << j;
    g = g * 5 % (2 * n);
  }
}

TEST(SpecialFFT, InverseUndoesForward) {
  SpecialFFT fft(8192);
  std::mt19937_64 rng(12);
  std::uniform_real_distribution<double> d(-1, 1);
  std::vector<cd> z(4096), w;
  for (auto& x : z) x = {d(rng), d(rng)};
  w = z;
  fft.inverse(w.data());
  fft.forward(w.data());
  for (size_t j = 0; j < z.size(); ++j) ASSERT_NEAR(std::abs(w[j] - z[j]), 0.0, 1e-13);
}

class EncoderRoundTrip : public ::testing::TestWithParam<size_t> {};

// ≥ 30 bits of precision at scale 2^40 at every level: |error| < 2^-30 for |x| <= 1.
TEST_P(EncoderRoundTrip, RealComplexPacked) {
  const Bundle& b = bundle_8192();
  const size_t level = GetParam(), n = b.ctx->n();
  const double scale = std::ldexp(1.0, 40), bound = std::ldexp(1.0, -30);
  Plaintext p;

  const auto x = random_reals(n / 2, 1.0, 20 + level);
  b.encoder->encode(x, scale, level, p);
  EXPECT_EQ(p.level(), level);
  EXPECT_EQ(p.scale(), scale);
  std::vector<double> y;
  b.encoder->decode(p, y);
  EXPECT_LT(max_abs_error(x, y), bound);

  std::vector<cd> z(n / 2), w;
  const auto im = random_reals(n / 2, 1.0, 40 + level);
  for (size_t j = 0; j < n / 2; ++j) z[j] = {x[j], im[j]};
  b.encoder->encode(z, scale, level, p);
  b.encoder->decode(p, w);
  double err = 0;
  for (size_t j = 0; j < n / 2; ++j) err = std::max(err, std::abs(w[j] - z[j]));
  EXPECT_LT(err, bound);

  const auto v = random_reals(n, 1.0, 60 + level);
  b.encoder->encode_packed(v, scale, level, p);
  b.encoder->decode_packed(p, y);
  ASSERT_EQ(y.size(), n);
  EXPECT_LT(max_abs_error(v, y), bound);
}

INSTANTIATE_TEST_SUITE_P(Levels, EncoderRoundTrip, ::testing::Values(0, 1, 2, 3));

TEST(Encoder, PackedLayoutIsRealPlusImaginary) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  const auto v = random_reals(n, 1.0, 5);
  Plaintext p;
  b.encoder->encode_packed(v, std::ldexp(1.0, 40), 3, p);
  std::vector<cd> slots;
  b.encoder->decode(p, slots);
  for (size_t j = 0; j < n / 2; ++j) {
    ASSERT_NEAR(slots[j].real(), v[j], 1e-9);
    ASSERT_NEAR(slots[j].imag(), v[j + n / 2], 1e-9);
  }
}

TEST(Encoder, ShortInputsArePaddedWithZeros) {
  const Bundle& b = bundle_8192();
  Plaintext p;
  b.encoder->encode(std::vector<double>{1.5, -2.25}, std::ldexp(1.0, 40), 2, p);
  std::vector<double> y;
  b.encoder->decode(p, y);
  EXPECT_NEAR(y[0], 1.5, 1e-9);
  EXPECT_NEAR(y[1], -2.25, 1e-9);
  for (size_t j = 2; j < y.size(); ++j) ASSERT_NEAR(y[j], 0.0, 1e-9);
}

TEST(Encoder, LargeValuesDecodeExactlyAcrossLimbs) {
  // Coefficients ~2^90 need the multiprecision CRT over all four limbs (Q ≈ 2^169).
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  auto x = random_reals(n / 2, 1.0, 7);
  for (auto& v : x) v *= std::ldexp(1.0, 50);
  Plaintext p;
  b.encoder->encode(x, std::ldexp(1.0, 40), 3, p);
  std::vector<double> y;
  b.encoder->decode(p, y);
  for (size_t j = 0; j < n / 2; ++j) ASSERT_NEAR(y[j], x[j], std::ldexp(1.0, 50) * 1e-14) << j;
}

TEST(Encoder, OverflowThrows) {
  const Bundle& b = bundle_8192();
  Plaintext p;
  // Level 0: Q = q_0 ≈ 2^49. A constant vector of 2^10 at scale 2^40 is the constant
  // polynomial 2^50 > Q/2.
  const std::vector<double> big(b.ctx->n() / 2, 1024.0);
  EXPECT_THROW(b.encoder->encode(big, std::ldexp(1.0, 40), 0, p), std::invalid_argument);
  EXPECT_NO_THROW(b.encoder->encode(big, std::ldexp(1.0, 40), 1, p));
  const std::vector<double> nan(4, std::nan(""));
  EXPECT_THROW(b.encoder->encode(nan, std::ldexp(1.0, 40), 1, p), std::invalid_argument);
  EXPECT_THROW(b.encoder->encode(std::vector<double>(b.ctx->n() / 2 + 1, 0.0), 1e6, 1, p),
               std::invalid_argument);
  EXPECT_THROW(b.encoder->encode(big, std::ldexp(1.0, 40), 4, p), std::invalid_argument);
  EXPECT_THROW(b.encoder->encode(big, -1.0, 1, p), std::invalid_argument);
  uint64_t r[4];
  EXPECT_THROW(encode_scalar(*b.ctx, 600.0, std::ldexp(1.0, 40), 0, r), std::invalid_argument);
  EXPECT_THROW(encode_scalar(*b.ctx, INFINITY, 1.0, 0, r), std::invalid_argument);
}

TEST(ScalarEncoding, ResiduesAreExactBeyond2To63) {
  const Bundle& b = bundle_8192();
  uint64_t r[4];
  for (double value : {0.0, 1.0, -1.0, 12345.678, -98765.4321, 3.0e5}) {
    for (double scale : {std::ldexp(1.0, 40), std::ldexp(1.0, 60), std::ldexp(1.0, 80)}) {
      const double scaled = std::nearbyint(value * scale);
      encode_scalar(*b.ctx, value, scale, 3, r);
      // Independent exact reference through 128-bit integers (|scaled| < 2^127).
      const ring::u128 mag = static_cast<ring::u128>(std::fabs(scaled));
      for (size_t i = 0; i <= 3; ++i) {
        const uint64_t q = b.ctx->modulus(i).value;
        uint64_t expect = static_cast<uint64_t>(mag % q);
        if (scaled < 0 && expect != 0) expect = q - expect;
        ASSERT_EQ(r[i], expect) << value << " " << scale << " limb " << i;
      }
    }
  }
}

TEST(ScalarEncoding, PlaintextScalarDecodesToConstant) {
  const Bundle& b = bundle_8192();
  Plaintext p;
  b.encoder->encode_scalar(-3.141592653589793, std::ldexp(1.0, 40), 2, p);
  std::vector<cd> slots;
  b.encoder->decode(p, slots);
  for (const auto& s : slots) {
    ASSERT_NEAR(s.real(), -3.141592653589793, 1e-11);
    ASSERT_NEAR(s.imag(), 0.0, 1e-11);
  }
}

TEST(Encoder, DecodeCoefficientsIsExactCenteredCrt) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  // A plaintext whose coefficients are known integers: encode_scalar of c puts round(cΔ)
  // in coefficient 0 and zeros elsewhere.
  Plaintext p;
  b.encoder->encode_scalar(-7.5, std::ldexp(1.0, 70), 3, p);
  std::vector<double> c;
  b.encoder->decode_coefficients(p, c);
  ASSERT_EQ(c.size(), n);
  EXPECT_EQ(c[0], -7.5);
  for (size_t k = 1; k < n; ++k) ASSERT_EQ(c[k], 0.0);
}

// The CRT composition on all of its paths: small coefficients (exact in 128 bits),
// coefficients of ±2^140 where Q > 2^145 (a 128-bit candidate that the residue check must
// reject) and coefficients within a few units of ±Q/2 (the multiprecision fallback), against
// values known by construction, at every level.
TEST(Encoder, DecodeCoefficientsNearHalfModulus) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  for (size_t level = 1; level <= b.ctx->max_level(); ++level) {
    SCOPED_TRACE("level " + std::to_string(level));
    std::vector<uint64_t> primes;
    for (size_t i = 0; i <= level; ++i) primes.push_back(b.ctx->modulus(i).value);
    const std::vector<uint64_t> q_product = ring::mp::product(primes);
    const double half_q = std::ldexp(ring::mp::to_double(q_product.data(), q_product.size()), -1);
    const bool wide = ring::mp::log2(q_product.data(), q_product.size()) > 145.0;
    Plaintext p;
    p.resize(n, level);
    p.set_scale(1.0);
    // Coefficient k: small values ±(k·2^70 + k) for k < 8; then (Q - 1)/2 - d and
    // -(Q - 1)/2 + d for d = 0..3 (the centered extremes).
    std::vector<double> expect(n, 0.0);
    for (size_t i = 0; i <= level; ++i) {
      const uint64_t q = primes[i];
      uint64_t* limb = p.limb(i);
      std::fill(limb, limb + n, 0);
      for (size_t k = 0; k < 8; ++k) {
        const ring::u128 mag = (static_cast<ring::u128>(k) << 70) + k;
        const auto r = static_cast<uint64_t>(mag % q);
        limb[k] = (k % 2 == 0 || r == 0) ? r : q - r;
        expect[k] = (k % 2 == 0 ? 1.0 : -1.0) * static_cast<double>(mag);
      }
      const uint64_t half = (q - 1) / 2;  // (Q - 1)/2 ≡ (q - 1)/2 (mod q): Q ≡ 0, 2^-1 = (q + 1)/2
      for (uint64_t d = 0; d < 4; ++d) {
        limb[8 + d] = (half + q - d) % q;           // (Q - 1)/2 - d
        limb[12 + d] = (q - half + d) % q;          // -(Q - 1)/2 + d
        expect[8 + d] = half_q;
        expect[12 + d] = -half_q;
        if (wide) {  // ±(2^140 + d)
          const uint64_t r = (ring::pow_mod(2, 140, b.ctx->modulus(i)) + d) % q;
          limb[16 + d] = d % 2 == 0 ? r : (q - r) % q;
          expect[16 + d] = (d % 2 == 0 ? 1.0 : -1.0) * std::ldexp(1.0, 140);
        }
      }
      b.ctx->ntt(i).forward(limb);
    }
    std::vector<double> c;
    b.encoder->decode_coefficients(p, c);
    for (size_t k = 0; k < 20; ++k) ASSERT_EQ(c[k], expect[k]) << "coefficient " << k;
    for (size_t k = 20; k < n; ++k) ASSERT_EQ(c[k], 0.0) << k;
  }
}

}  // namespace heinfer::ckks::test
