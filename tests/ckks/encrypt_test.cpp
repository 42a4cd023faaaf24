// Public-key and symmetric (seeded) encryption, decryption, compact/expand.
#include <gtest/gtest.h>

#include "test_util.h"

namespace heinfer::ckks::test {

// Fresh-encryption error at scale 2^40, N = 8192 (max over all slots): observed
// ≈ 1.4e-8 public key (rounding of the division by P), ≈ 8e-10 symmetric; bound 2^-23.
constexpr double kFreshBound = 1.0 / (1 << 23);

TEST(Encrypt, PublicKeyAtEveryLevel) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  for (size_t level = 0; level <= b.ctx->max_level(); ++level) {
    const auto v = random_reals(n, 1.0, 100 + level);
    Ciphertext c = b.encrypt_packed(v, std::ldexp(1.0, 40), level);
    EXPECT_EQ(c.level(), level);
    EXPECT_EQ(c.size(), 2u);
    EXPECT_FALSE(c.is_seeded());
    EXPECT_LT(max_abs_error(b.decrypt_packed(c), v), kFreshBound) << level;
  }
}

TEST(Encrypt, EncryptionsAreRandomized) {
  const Bundle& b = bundle_8192();
  const auto v = random_reals(16, 1.0, 1);
  Ciphertext c1 = b.encrypt_real(v, std::ldexp(1.0, 40), 3);
  Ciphertext c2 = b.encrypt_real(v, std::ldexp(1.0, 40), 3);
  EXPECT_NE(c1.data(), c2.data());
  Plaintext p;
  b.encoder->encode(v, std::ldexp(1.0, 40), 3, p);
  Ciphertext s1, s2;
  b.encryptor->encrypt_symmetric(p, s1);
  b.encryptor->encrypt_symmetric(p, s2);
  EXPECT_NE(s1.data(), s2.data());
  EXPECT_NE(s1.seed(), s2.seed());
}

TEST(Encrypt, SymmetricIsSeededAndCompacts) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  const auto v = random_reals(n, 1.0, 7);
  Plaintext p;
  b.encoder->encode_packed(v, std::ldexp(1.0, 40), 3, p);
  Ciphertext c;
  b.encryptor->encrypt_symmetric(p, c);
  ASSERT_TRUE(c.is_seeded());
  EXPECT_LT(max_abs_error(b.decrypt_packed(c), v), kFreshBound);

  // c1 is exactly the expansion of the seed.
  std::vector<uint64_t> mask(4 * n);
  expand_ciphertext_mask(*b.ctx, c.seed(), 3, mask.data());
  EXPECT_TRUE(std::equal(mask.begin(), mask.end(), c.poly(1)));

  const ckks::Ciphertext::Storage full = c.data();
  c.compact();
  EXPECT_TRUE(c.is_compact());
  EXPECT_EQ(c.data().size(), full.size() / 2);
  EXPECT_LT(max_abs_error(b.decrypt_packed(c), v), kFreshBound);  // decrypts compact too
  Ciphertext out;
  EXPECT_THROW(b.eval->add(c, c, out), std::invalid_argument);  // evaluator wants expanded
  c.expand(*b.ctx);
  EXPECT_FALSE(c.is_compact());
  EXPECT_EQ(c.data(), full);

  // Dropping limbs keeps the seed valid (one stream per limb).
  b.eval->mod_switch_inplace(c);
  const ckks::Ciphertext::Storage dropped = c.data();
  c.compact();
  c.expand(*b.ctx);
  EXPECT_EQ(c.data(), dropped);
}

TEST(Encrypt, EvaluatorResultsAreNotSeeded) {
  const Bundle& b = bundle_8192();
  Plaintext p;
  b.encoder->encode(random_reals(8, 1.0, 3), std::ldexp(1.0, 40), 3, p);
  Ciphertext c, d;
  b.encryptor->encrypt_symmetric(p, c);
  b.eval->add(c, c, d);
  EXPECT_FALSE(d.is_seeded());
  EXPECT_THROW(d.compact(), std::logic_error);
  b.eval->add_inplace(c, c);
  EXPECT_FALSE(c.is_seeded());
}

TEST(Encrypt, MissingKeysAndMismatchesThrow) {
  const Bundle& b = bundle_8192();
  Encryptor only_pk(b.ctx, b.pk);
  Encryptor only_sk(b.ctx, b.keygen->secret_key());
  Plaintext p;
  b.encoder->encode(std::vector<double>{1.0}, std::ldexp(1.0, 40), 3, p);
  Ciphertext c;
  EXPECT_THROW(only_pk.encrypt_symmetric(p, c), std::logic_error);
  EXPECT_THROW(only_sk.encrypt(p, c), std::logic_error);
  EXPECT_NO_THROW(only_pk.encrypt(p, c));
  EXPECT_NO_THROW(only_sk.encrypt_symmetric(p, c));
  const Bundle& other = bundle_2048_insecure();
  EXPECT_THROW(Encryptor(other.ctx, b.pk), std::invalid_argument);
  EXPECT_THROW(Decryptor(other.ctx, b.keygen->secret_key()), std::invalid_argument);
  EXPECT_THROW(other.encryptor->encrypt(p, c), std::invalid_argument);
}

TEST(Encrypt, SecretKeyIsTernaryInEveryLimb) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  for (size_t i = 0; i < b.ctx->key_limb_count(); ++i) {
    std::vector<uint64_t> s(b.keygen->secret_key().data().begin() + i * n,
                            b.keygen->secret_key().data().begin() + (i + 1) * n);
    b.ctx->ntt(i).inverse(s.data());
    const uint64_t q = b.ctx->modulus(i).value;
    size_t zeros = 0;
    for (uint64_t v : s) {
      ASSERT_TRUE(v == 0 || v == 1 || v == q - 1);
      zeros += v == 0;
    }
    EXPECT_GT(zeros, n / 4);
    EXPECT_LT(zeros, n / 2);
  }
}

}  // namespace heinfer::ckks::test
