// Blind refresh (ckks/blind_refresh.h): values survive the round trip to the top level,
// and a curious client learns nothing of the weights from what it decrypts (two models
// that differ only in their weights give indistinguishable views), nor from c_1.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "ckks/blind_refresh.h"
#include "ring/modulus.h"
#include "../common/ks_test.h"
#include "test_util.h"

namespace heinfer::ckks {
namespace {

/// N = 8192, chain {60, 40, 30, 30, 30} (190 bits, no special prime: no key switching),
/// 128-bit secure. Level 2 keeps 130 bits: room for a mask of up to 127 bits.
struct Party {
  ContextPtr ctx = test::make_context(8192, {60, 40, 30, 30, 30}, {});
  KeyGenerator keygen{ctx};
  PublicKey pk = keygen.create_public_key();
  CKKSEncoder encoder{ctx};
  Encryptor client_encryptor{ctx, keygen.secret_key()};  // the client's (symmetric)
  Encryptor server_encryptor{ctx, pk};                   // the server's (public key only)
  Decryptor decryptor{ctx, keygen.secret_key()};
  Evaluator eval{ctx};
  static constexpr double kScale = 0x1p30;

  Ciphertext encrypt(const std::vector<double>& v) {
    Plaintext p;
    encoder.encode(v, kScale, ctx->max_level(), p);
    Ciphertext c;
    client_encryptor.encrypt_symmetric(p, c);
    return c;
  }
  std::vector<double> decrypt(const Ciphertext& c) {
    Plaintext p;
    decryptor.decrypt(c, p);
    std::vector<double> v;
    encoder.decode(p, v);
    return v;
  }
  /// The server's linear layer: w·x, rescaled twice (top level 4 -> level 2).
  Ciphertext linear(const Ciphertext& x, double w) {
    Ciphertext y;
    eval.multiply_scalar(x, w, kScale, y);
    eval.rescale_inplace(y);
    eval.multiply_scalar_inplace(y, 1.0, kScale);
    eval.rescale_inplace(y);
    return y;
  }
  /// What a curious client records: the decrypted integer coefficients, in units of 2^bits.
  std::vector<double> coefficients(const Ciphertext& c, int bits) {
    Plaintext p;
    decryptor.decrypt(c, p);
    std::vector<double> v;
    encoder.decode_coefficients(p, v);  // c / scale
    for (double& x : v) x = std::ldexp(x * c.scale(), -bits);
    return v;
  }
};

Party& party() {
  static Party p;
  return p;
}

TEST(BlindRefresh, ValuesSurviveTheRoundTripToTheTopLevel) {
  Party& p = party();
  const std::vector<double> x = test::random_reals(4096, 3.0, 11);
  Ciphertext y = p.linear(p.encrypt(x), -1.7);
  ASSERT_EQ(y.level(), 2u);
  // |Δ·m + e| <= 2^30 · 5.1 · (1 + noise): a bound of 2^34, 40 + 13 hiding bits.
  const int bits = refresh_mask_bits(0x1p34, 53);
  ASSERT_EQ(bits, 87);
  ASSERT_TRUE(refresh_fits(*p.ctx, y.level(), bits));
  const RefreshMask mask = mask_for_refresh(y, p.server_encryptor, bits, *p.ctx);
  Ciphertext fresh = refresh_at_top_level(y, bits, p.decryptor, p.client_encryptor, *p.ctx);
  EXPECT_EQ(fresh.level(), p.ctx->max_level());
  unmask_refreshed(fresh, mask, *p.ctx);
  const std::vector<double> got = p.decrypt(fresh);
  double err = 0;
  for (std::size_t i = 0; i < x.size(); ++i) err = std::max(err, std::fabs(got[i] + 1.7 * x[i]));
  // Fresh-encryption noise at a 30-bit scale: the re-randomization (Enc_pk(0), no special
  // prime to divide its noise by) and the client's new encryption add about 1e-4.
  EXPECT_LT(err, 5e-4);
  // The refreshed ciphertext computes on: two more levels.
  Ciphertext z = p.linear(fresh, 0.5);
  const std::vector<double> zz = p.decrypt(z);
  err = 0;
  for (std::size_t i = 0; i < x.size(); ++i) err = std::max(err, std::fabs(zz[i] + 0.85 * x[i]));
  EXPECT_LT(err, 5e-4);
}

TEST(BlindRefresh, CuriousClientCannotTellTwoModelsApart) {
  // Two models that differ only in their weights, on the same inputs. The client records
  // every coefficient it decrypts during the refreshes (13 ciphertexts: 106,496 values per
  // model). Masked, the two records are indistinguishable and span the mask range;
  // without the mask, or with a mask as wide as the coefficients themselves (about 2^24
  // and 2^26 here: coefficients are the slots' values over √N), the same test tells them
  // apart: it has the power to fail.
  Party& p = party();
  const int bits = refresh_mask_bits(0x1p34, 53);
  auto record = [&](double w, int mask_bits, bool masked) {
    std::vector<double> seen;
    for (int c = 0; c < 13; ++c) {
      Ciphertext y = p.linear(p.encrypt(test::random_reals(4096, 3.0, 100 + c)), w);
      if (masked) mask_for_refresh(y, p.server_encryptor, mask_bits, *p.ctx);
      const std::vector<double> v = p.coefficients(y, mask_bits);
      seen.insert(seen.end(), v.begin(), v.end());
    }
    return seen;
  };
  // Under the claim the p-value is uniform on [0, 1]: a single test at 0.01 would fail 1 %
  // of correct runs, so a rejection is retried once on fresh masks (false alarms: 10^-4).
  std::vector<double> a, b;
  double p_masked = 0;
  for (int attempt = 0; attempt < 2 && p_masked <= 0.01; ++attempt) {
    a = record(0.4, bits, true);
    b = record(-2.5, bits, true);
    p_masked = heinfer::test::ks_p_value(a, b);
  }
  EXPECT_GT(p_masked, 0.01) << "the masked views differ";
  const auto [lo, hi] = std::minmax_element(a.begin(), a.end());
  EXPECT_LT(*lo, -0.999);  // in units of R: the record spans [-R, R)
  EXPECT_GT(*hi, 0.999);
  EXPECT_LE(std::max(-*lo, *hi), 1.0 + 1e-6);
  // Controls: the same test on the unmasked values and with a narrow mask.
  const double p_unmasked = heinfer::test::ks_p_value(record(0.4, bits, false), record(-2.5, bits, false));
  const int narrow = refresh_mask_bits(0x1p26, 0);
  const double p_narrow = heinfer::test::ks_p_value(record(0.4, narrow, true), record(-2.5, narrow, true));
  EXPECT_LT(p_unmasked, 1e-6);
  EXPECT_LT(p_narrow, 1e-6);
  std::printf("KS p-values over %zu values per model: masked (2^%d) %.3f, unmasked %.2g, narrow mask (2^%d) %.2g\n",
              a.size(), bits, p_masked, p_unmasked, narrow, p_narrow);
}

TEST(BlindRefresh, TheSecondComponentDoesNotRevealTheWeight) {
  // y = w·x with an integer weight w: c1(y) = w·c1(x), and the client knows c1(x) (it
  // encrypted x). Without re-randomization it finds w by trying candidates; with it, no
  // candidate fits.
  Party& p = party();
  const Ciphertext x = p.encrypt(test::random_reals(4096, 1.0, 7));
  const std::int64_t w = 37;
  const ring::Modulus& q0 = p.ctx->modulus(0);
  auto times_w = [&](const Ciphertext& c) {
    Ciphertext y = c;
    for (std::size_t poly = 0; poly < 2; ++poly) {
      for (std::size_t i = 0; i <= y.level(); ++i) {
        const ring::Modulus& q = p.ctx->modulus(i);
        for (std::size_t k = 0; k < p.ctx->n(); ++k) y.limb(poly, i)[k] = ring::mul_mod(y.limb(poly, i)[k], w, q);
      }
    }
    return y;
  };
  auto attack = [&](const Ciphertext& y) -> std::int64_t {
    for (std::int64_t guess = -100; guess <= 100; ++guess) {
      const uint64_t g = guess < 0 ? q0.value - static_cast<uint64_t>(-guess) : static_cast<uint64_t>(guess);
      bool fits = true;
      for (std::size_t k = 0; k < 64 && fits; ++k) fits = ring::mul_mod(x.limb(1, 0)[k], g, q0) == y.limb(1, 0)[k];
      if (fits) return guess;
    }
    return 0;
  };
  EXPECT_EQ(attack(times_w(x)), w);  // the attack works on the plain product
  Ciphertext masked = times_w(x);
  mask_for_refresh(masked, p.server_encryptor, 87, *p.ctx);
  EXPECT_EQ(attack(masked), 0);
}

TEST(BlindRefresh, TheClientRefusesOutOfRangeCoefficientsAndTheServerSmallLevels) {
  Party& p = party();
  Ciphertext y = p.linear(p.encrypt(test::random_reals(4096, 3.0, 5)), 1.0);
  // A mask announced as 40 bits on values of 2^31..2^32 (|Δ·m| up to 3·2^30) plus a
  // mask of 87 bits: the client sees coefficients far beyond 2^41 and refuses.
  mask_for_refresh(y, p.server_encryptor, 87, *p.ctx);
  try {
    refresh_at_top_level(y, 40, p.decryptor, p.client_encryptor, *p.ctx);
    ADD_FAILURE() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the announced mask bound"), std::string::npos) << e.what();
  }
  // Level 0 (60 bits) cannot carry an 87-bit mask, on either side.
  Ciphertext low = p.encrypt(test::random_reals(16, 1.0, 3));
  low.drop_limbs(p.ctx->max_level());
  EXPECT_FALSE(refresh_fits(*p.ctx, 0, 87));
  EXPECT_THROW(mask_for_refresh(low, p.server_encryptor, 87, *p.ctx), std::invalid_argument);
  EXPECT_THROW(refresh_at_top_level(low, 87, p.decryptor, p.client_encryptor, *p.ctx), std::invalid_argument);
  EXPECT_THROW(refresh_mask_bits(0.5, 40), std::invalid_argument);
}

}  // namespace
}  // namespace heinfer::ckks
