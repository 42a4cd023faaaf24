// Key-switching noise: the error added by relinearize / rotate, measured in bits on the
// exact (multiprecision CRT) plaintext coefficients.
#include <gtest/gtest.h>

#include <cstdio>

#include "ring/poly_arith.h"
#include "test_util.h"

namespace heinfer::ckks::test {

namespace {

// log2 of max |a - b| over the integer coefficients of two plaintexts (scale ignored).
double noise_bits(const Bundle& b, const Plaintext& x, const Plaintext& y) {
  Plaintext d = x;
  for (size_t i = 0; i <= x.level(); ++i) {
    ring::sub_poly(x.limb(i), y.limb(i), d.limb(i), b.ctx->n(), b.ctx->modulus(i));
  }
  d.set_scale(1.0);
  std::vector<double> c;
  b.encoder->decode_coefficients(d, c);
  double m = 0;
  for (double v : c) m = std::max(m, std::fabs(v));
  return std::log2(std::max(m, 1.0));
}

// Expected key-switching error (Han-Ki): Σ_j d_j·e_j / P + rounding, with
// |d_j| < Q_Dj ≈ 2^bits(digit), e_j ~ σ√N per coefficient of the product, dnum digits:
// ≈ log2(2^bits(digit) · σ · √N · √dnum / P) + a few bits; we allow 12 bits.
constexpr double kMaxKeySwitchBits = 12.0;

}  // namespace

TEST(KeySwitchNoise, RelinearizeAddsFewBits) {
  for (const Bundle* b : {&bundle_8192(), &bundle_8192_alpha2(), &bundle_2048_insecure()}) {
    for (size_t level : {size_t{0}, b->ctx->max_level()}) {
      const auto x = random_reals(b->ctx->n() / 2, 1.0, 3 + level);
      Ciphertext c = b->encrypt_real(x, std::ldexp(1.0, 30), level), t, r;
      b->eval->multiply(c, c, t);
      b->eval->relinearize(t, b->rk, r);
      Plaintext pt, pr;
      b->decryptor->decrypt(t, pt);
      b->decryptor->decrypt(r, pr);
      const double bits = noise_bits(*b, pt, pr);
      EXPECT_LT(bits, kMaxKeySwitchBits) << b->ctx->describe() << " level " << level;
      EXPECT_GT(bits, 1.0);  // the measurement sees the (non-zero) key-switching error
      std::printf("relinearize noise: %s, level %zu: %.2f bits\n", b->ctx->describe().c_str(), level, bits);
    }
  }
}

TEST(KeySwitchNoise, RotateAddsFewBits) {
  for (const Bundle* b : {&bundle_8192(), &bundle_8192_alpha2()}) {
    const size_t n = b->ctx->n();
    const GaloisKeys gk = b->keygen->create_galois_keys({7});
    const uint32_t g = galois_element_for_step(7, n);
    const auto& perm = b->ctx->galois_permutation(g);
    for (size_t level : {size_t{0}, b->ctx->max_level()}) {
      const auto x = random_reals(n / 2, 1.0, 9 + level);
      Ciphertext c = b->encrypt_real(x, std::ldexp(1.0, 30), level), r;
      b->eval->rotate(c, 7, gk, r);
      Plaintext pc, pr;
      b->decryptor->decrypt(c, pc);
      b->decryptor->decrypt(r, pr);
      Plaintext sigma = pc;  // σ applied to the plaintext in the NTT domain
      for (size_t i = 0; i <= level; ++i) {
        for (size_t j = 0; j < n; ++j) sigma.limb(i)[j] = pc.limb(i)[perm[j]];
      }
      const double bits = noise_bits(*b, sigma, pr);
      std::printf("rotate noise: %s, level %zu: %.2f bits\n", b->ctx->describe().c_str(), level, bits);
      EXPECT_LT(bits, kMaxKeySwitchBits) << b->ctx->describe() << " level " << level;
      EXPECT_GT(bits, 1.0);
    }
  }
}

TEST(KeySwitchNoise, FreshPublicKeyNoiseIsSmall) {
  // Encryption divides by P, so the fresh noise is the rounding term (~log2(√N) bits),
  // not u·e (~ 2^15 for N = 8192).
  const Bundle& b = bundle_8192();
  const auto x = random_reals(b.ctx->n() / 2, 1.0, 4);
  Plaintext p, d;
  b.encoder->encode(x, std::ldexp(1.0, 40), 3, p);
  Ciphertext c;
  b.encryptor->encrypt(p, c);
  b.decryptor->decrypt(c, d);
  const double bits = noise_bits(b, p, d);
  std::printf("fresh public-key encryption noise: %.2f bits\n", bits);
  EXPECT_LT(bits, 10.0);
  EXPECT_GT(bits, 1.0);
}

}  // namespace heinfer::ckks::test

namespace heinfer::ckks::test {

// Regression: with non-centered digits d_j ∈ [0, q_j) the key-switching error contains
// (q_j / 2P) · (Σ_k X^k) · e_j, which is coherent (large at the slot nearest to root 1):
// ≈ 1.2e-6 in the slots at scale 2^40 instead of ≈ 4e-8, with a coefficient mean ≈ -34.
TEST(KeySwitchNoise, ErrorIsNotStructured) {
  for (const Bundle* b : {&bundle_8192(), &bundle_8192_alpha2()}) {
    const size_t n = b->ctx->n(), top = b->ctx->max_level();
    const GaloisKeys gk = b->keygen->create_galois_keys({}, true);
    const uint32_t g = galois_element_conjugate(n);
    const auto& perm = b->ctx->galois_permutation(g);
    Ciphertext c = b->encrypt_packed(random_reals(n, 1.0, 31), std::ldexp(1.0, 30), top), r;
    b->eval->conjugate(c, gk, r);
    Plaintext pc, pr;
    b->decryptor->decrypt(c, pc);
    b->decryptor->decrypt(r, pr);
    Plaintext diff = pc;  // decrypt(conj(c)) - σ(decrypt(c)): the key-switching error
    for (size_t i = 0; i <= top; ++i) {
      for (size_t j = 0; j < n; ++j) diff.limb(i)[j] = pc.limb(i)[perm[j]];
      ring::sub_poly(pr.limb(i), diff.limb(i), diff.limb(i), n, b->ctx->modulus(i));
    }
    diff.set_scale(1.0);
    std::vector<double> coeffs;
    b->encoder->decode_coefficients(diff, coeffs);
    double mean = 0;
    for (double v : coeffs) mean += v / static_cast<double>(n);
    EXPECT_LT(std::fabs(mean), 4.0) << b->ctx->describe();  // sd of the mean ≈ 150/90
    diff.set_scale(std::ldexp(1.0, 40));
    std::vector<std::complex<double>> slots;
    b->encoder->decode(diff, slots);
    double worst = 0;
    for (const auto& z : slots) worst = std::max(worst, std::abs(z));
    EXPECT_LT(worst, std::ldexp(1.0, -22)) << b->ctx->describe();
  }
}

}  // namespace heinfer::ckks::test
