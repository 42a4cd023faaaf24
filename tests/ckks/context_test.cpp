// CKKSContext validation, fingerprint and precomputation.
#include <gtest/gtest.h>
#include <sodium.h>

#include "ckks/sizes.h"
#include "ring/multiprecision.h"
#include "ring/poly_arith.h"
#include "ring/primes.h"
#include "test_util.h"

namespace heinfer::ckks::test {

TEST(Context, ShapeAndPrimes) {
  auto ctx = make_context(8192, {43, 43, 44, 44}, {44});
  EXPECT_EQ(ctx->n(), 8192u);
  EXPECT_EQ(ctx->max_level(), 3u);
  EXPECT_EQ(ctx->special_count(), 1u);
  EXPECT_EQ(ctx->key_limb_count(), 5u);
  EXPECT_EQ(ctx->digit_count(3), 4u);
  EXPECT_EQ(ctx->digit_count(0), 1u);
  const int bits[] = {43, 43, 44, 44, 44};
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(ctx->modulus(i).bit_count, bits[i]);
    EXPECT_TRUE(ring::is_prime(ctx->modulus(i).value));
    EXPECT_EQ(ctx->modulus(i).value % (2 * 8192), 1u);
  }
  // Special primes are generated first: the largest 44-bit one is p_0.
  EXPECT_GT(ctx->modulus(4).value, ctx->modulus(2).value);
  EXPECT_GT(ctx->modulus(4).value, ctx->modulus(3).value);
}

TEST(Context, FingerprintIsSha256OfCanonicalEncoding) {
  auto ctx = make_context(4096, {36, 36}, {37});
  std::vector<uint8_t> buf;
  const std::string tag = "heinfer-ckks-params-v1";
  buf.insert(buf.end(), tag.begin(), tag.end());
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) buf.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put(4096, 8);
  put(2, 4);
  put(ctx->modulus(0).value, 8);
  put(ctx->modulus(1).value, 8);
  put(1, 4);
  put(ctx->modulus(2).value, 8);
  Fingerprint expected;
  ASSERT_EQ(sodium_init() >= 0, true);
  crypto_hash_sha256(expected.data(), buf.data(), buf.size());
  EXPECT_EQ(ctx->fingerprint(), expected);
}

TEST(Context, FingerprintDeterministicAndDistinguishing) {
  auto a = make_context(4096, {36, 36}, {37});
  auto b = make_context(4096, {36, 36}, {37});
  auto c = make_context(4096, {36, 35}, {37});
  EXPECT_EQ(a->fingerprint(), b->fingerprint());
  EXPECT_NE(a->fingerprint(), c->fingerprint());
  // Explicit primes equal to the generated ones give the same context.
  EncryptionParameters p;
  p.set_poly_modulus_degree(4096);
  p.set_coeff_modulus({a->modulus(0).value, a->modulus(1).value}, {a->modulus(2).value});
  EXPECT_EQ(CKKSContext::create(p)->fingerprint(), a->fingerprint());
}

TEST(Context, WithoutSpecialPrimeThereIsNoKeySwitching) {
  const auto c = make_context(4096, {36, 36}, {});
  EXPECT_EQ(c->special_count(), 0u);
  EXPECT_EQ(c->key_limb_count(), 2u);
  EXPECT_EQ(c->digit_count(c->max_level()), 0u);
  EncryptionParameters p = c->parameters();
  EXPECT_EQ(key_switching_key_bytes(p), 0);
}

TEST(Context, RejectsInvalidParameters) {
  EXPECT_THROW(make_context(1024, {20}, {20}), std::invalid_argument);    // N too small
  EXPECT_THROW(make_context(6000, {30}, {30}), std::invalid_argument);    // not a power of 2
  EXPECT_THROW(make_context(131072, {30}, {30}), std::invalid_argument);  // N too large
  EXPECT_THROW(make_context(4096, {}, {37}), std::invalid_argument);      // no chain
  auto good = make_context(4096, {36, 36}, {37});
  const uint64_t q0 = good->modulus(0).value, q1 = good->modulus(1).value;
  EncryptionParameters p;
  p.set_poly_modulus_degree(4096);
  p.set_coeff_modulus({q0, q0}, {q1});  // repeated
  EXPECT_THROW(CKKSContext::create(p), std::invalid_argument);
  p.set_coeff_modulus({q0 + 2 * 4096}, {q1});  // probably not prime; certainly checked
  if (!ring::is_prime(q0 + 2 * 4096)) {
    EXPECT_THROW(CKKSContext::create(p), std::invalid_argument);
  }
  p.set_coeff_modulus({1000003}, {q1});  // prime but not 1 mod 2N
  EXPECT_THROW(CKKSContext::create(p), std::invalid_argument);
}

TEST(Context, GaloisPermutationMatchesCoefficientAutomorphism) {
  auto ctx = make_context(4096, {36, 36}, {37});
  const size_t n = ctx->n();
  const ring::Modulus& q = ctx->modulus(0);
  std::mt19937_64 rng(3);
  std::vector<uint64_t> a(n);
  for (auto& v : a) v = rng() % q.value;
  for (uint32_t g : {5u, 25u, 3u, static_cast<uint32_t>(2 * n - 1), galois_element_for_step(-7, n)}) {
    // σ_g(a) = Σ a_k X^(k g) mod X^N + 1 in coefficient form.
    std::vector<uint64_t> sigma(n, 0);
    for (size_t k = 0; k < n; ++k) {
      const uint64_t e = k * g % (2 * n);
      if (e < n) sigma[e] = a[k];
      else sigma[e - n] = ring::negate_mod(a[k], q.value);
    }
    std::vector<uint64_t> a_ntt(a), s_ntt(sigma);
    ctx->ntt(0).forward(a_ntt.data());
    ctx->ntt(0).forward(s_ntt.data());
    const auto& perm = ctx->galois_permutation(g);
    for (size_t j = 0; j < n; ++j) ASSERT_EQ(s_ntt[j], a_ntt[perm[j]]) << "g=" << g << " j=" << j;
  }
  EXPECT_THROW(ctx->galois_permutation(4), std::invalid_argument);
  EXPECT_THROW(ctx->galois_permutation(static_cast<uint32_t>(2 * n + 1)), std::invalid_argument);
}

TEST(Context, ImaginaryUnitIsXToTheHalfN) {
  auto ctx = make_context(4096, {36, 36}, {37});
  const size_t n = ctx->n();
  for (size_t i = 0; i < ctx->key_limb_count(); ++i) {
    const ring::Modulus& q = ctx->modulus(i);
    const uint64_t im = ctx->imag_unit(i);
    EXPECT_EQ(ring::mul_mod(im, im, q), q.value - 1);
    std::vector<uint64_t> x(n, 0);
    x[n / 2] = 1;
    ctx->ntt(i).forward(x.data());
    for (size_t j = 0; j < n; ++j) ASSERT_EQ(x[j], j < n / 2 ? im : q.value - im);
  }
}

TEST(Context, LevelAndModDownConstants) {
  auto ctx = make_context(8192, {40, 30, 30, 30}, {44, 44});
  for (size_t l = 1; l <= ctx->max_level(); ++l) {
    const LevelData& d = ctx->level_data(l);
    for (size_t i = 0; i < l; ++i) {
      EXPECT_EQ(ring::mul_mod(d.inv_q_last[i],
                              ring::reduce_64(ctx->modulus(l).value, ctx->modulus(i)),
                              ctx->modulus(i)),
                1u);
    }
    // CRT: Q mod q_i == 0, Q/q_i · inv ≡ 1.
    for (size_t i = 0; i <= l; ++i) {
      EXPECT_EQ(ring::mp::mod_word(d.q_product.data(), d.crt_words, ctx->modulus(i)), 0u);
      const uint64_t punct =
          ring::mp::mod_word(d.punctured.data() + i * d.crt_words, d.crt_words, ctx->modulus(i));
      EXPECT_EQ(ring::mul_mod(punct, d.inv_punctured[i], ctx->modulus(i)), 1u);
    }
    EXPECT_EQ(d.digits.size(), (l + 2) / 2);
  }
  const ModDownData& md = ctx->mod_down();
  for (size_t i = 0; i <= ctx->max_level(); ++i) {
    EXPECT_EQ(ring::mul_mod(md.p_mod_q[i], md.inv_p_mod_q[i], ctx->modulus(i)), 1u);
  }
}

}  // namespace heinfer::ckks::test
