// Serialization round trips and rejection of each malformed-input class.
#include <gtest/gtest.h>

#include <sstream>

#include "ckks/secret_key_io.h"
#include "ckks/serialization.h"
#include "test_util.h"

namespace heinfer::ckks::test {

namespace {

constexpr double kScale = 1099511627776.0;  // 2^40

// Runs f, expecting a SerializationError whose message contains `needle`.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no SerializationError (expected \"" << needle << "\")";
  } catch (const SerializationError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << needle << "\"";
  }
}

void put_u64(std::vector<uint8_t>& v, size_t at, uint64_t x) {
  for (int i = 0; i < 8; ++i) v[at + i] = static_cast<uint8_t>(x >> (8 * i));
}

constexpr size_t kHeader = 48;     // magic 4, version 2, type 2, fingerprint 32, size 8
constexpr size_t kBodySizeAt = 40;

}  // namespace

TEST(Serialization, ParametersRoundTrip) {
  const Bundle& b = bundle_8192();
  const auto bytes = to_bytes(b.ctx->parameters());
  const EncryptionParameters p = load_parameters(bytes);
  EXPECT_EQ(CKKSContext::create(p)->fingerprint(), b.ctx->fingerprint());
  std::stringstream ss;
  save(b.ctx->parameters(), ss);
  EXPECT_EQ(CKKSContext::create(load_parameters(ss))->fingerprint(), b.ctx->fingerprint());
  // The insecure flag survives.
  const auto ins = load_parameters(to_bytes(bundle_2048_insecure().ctx->parameters()));
  EXPECT_EQ(ins.security_level(), SecurityLevel::None);
}

TEST(Serialization, CiphertextRoundTripsFullSeededAndSizeThree) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  const auto v = random_reals(n, 1.0, 1);
  Ciphertext c = b.encrypt_packed(v, kScale, 2);
  const auto bytes = to_bytes(c, *b.ctx);
  Ciphertext l = load_ciphertext(bytes, *b.ctx);
  EXPECT_EQ(l.data(), c.data());
  EXPECT_EQ(l.level(), 2u);
  EXPECT_EQ(l.scale(), kScale);

  // Size 3 through a stream.
  Ciphertext t;
  b.eval->multiply(c, c, t);
  std::stringstream ss;
  save(t, *b.ctx, ss);
  Ciphertext lt = load_ciphertext(ss, *b.ctx);
  EXPECT_EQ(lt.size(), 3u);
  EXPECT_EQ(lt.data(), t.data());

  // Seeded: half the size, and it decrypts after expansion.
  Plaintext p;
  b.encoder->encode_packed(v, kScale, 3, p);
  Ciphertext s;
  b.encryptor->encrypt_symmetric(p, s);
  const auto full = to_bytes(s, *b.ctx);
  Ciphertext compact = s;
  compact.compact();
  const auto half = to_bytes(compact, *b.ctx);
  EXPECT_LT(half.size(), full.size() / 2 + 100);
  Ciphertext ls = load_ciphertext(half, *b.ctx);
  EXPECT_TRUE(ls.is_compact());
  ls.expand(*b.ctx);
  EXPECT_EQ(ls.data(), s.data());
  EXPECT_LT(max_abs_error(b.decrypt_packed(ls), v), 1e-6);
  // 44-bit and 40-bit primes: 6 or 5 bytes per coefficient instead of 8.
  EXPECT_LT(full.size(), 2 * 4 * n * 7);
}

TEST(Serialization, KeysRoundTripAndWork) {
  const Bundle& b = bundle_8192();
  const size_t n = b.ctx->n();
  const auto v = random_reals(n / 2, 1.0, 2);

  const PublicKey pk = load_public_key(to_bytes(b.pk, *b.ctx), *b.ctx);
  EXPECT_EQ(pk.data, b.pk.data);
  EXPECT_LT(to_bytes(b.pk, *b.ctx).size(), b.pk.data.size() * 8 / 2);  // seeded: b only

  const RelinKeys rk = load_relin_keys(to_bytes(b.rk, *b.ctx), *b.ctx);
  EXPECT_EQ(rk.key.data, b.rk.key.data);

  const GaloisKeys gk = b.keygen->create_galois_keys({1, -2}, true);
  std::stringstream ss;
  save(gk, *b.ctx, ss);
  const GaloisKeys lgk = load_galois_keys(ss, *b.ctx);
  ASSERT_EQ(lgk.keys.size(), 3u);
  for (const auto& [g, k] : gk.keys) EXPECT_EQ(lgk.keys.at(g).data, k.data);

  const SecretKey sk = load_secret_key(secret_key_to_bytes(b.keygen->secret_key(), *b.ctx), *b.ctx);
  EXPECT_EQ(sk.data(), b.keygen->secret_key().data());

  // The loaded keys work together.
  Encryptor enc(b.ctx, pk);
  Decryptor dec(b.ctx, sk);
  Plaintext p;
  b.encoder->encode(v, kScale, 3, p);
  Ciphertext c, r;
  enc.encrypt(p, c);
  b.eval->multiply_relinearize(c, c, rk, r);
  b.eval->rotate_inplace(r, 1, lgk);
  Plaintext d;
  dec.decrypt(r, d);
  std::vector<double> out;
  b.encoder->decode(d, out);
  for (size_t j = 0; j < n / 2; ++j) {
    const double e = v[(j + 1) % (n / 2)];
    ASSERT_NEAR(out[j], e * e, 1e-6);
  }
}

TEST(Serialization, RejectsMalformedInput) {
  const Bundle& b = bundle_8192();
  const Ciphertext c = b.encrypt_real(random_reals(8, 1.0, 3), kScale, 1);
  const auto good = to_bytes(c, *b.ctx);
  ASSERT_NO_THROW(load_ciphertext(good, *b.ctx));

  auto bad = good;
  bad[0] = 'X';
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "bad magic");

  bad = good;
  bad[4] = 2;  // version 2
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "unsupported format version 2");

  expect_error([&] { load_public_key(good, *b.ctx); }, "expected PublicKey, found Ciphertext");
  bad = good;
  bad[6] = 99;
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "found unknown (99)");

  for (size_t cut : {size_t{0}, size_t{3}, size_t{20}, kHeader, kHeader + 10, good.size() - 1}) {
    std::vector<uint8_t> t(good.begin(), good.begin() + static_cast<long>(cut));
    expect_error([&] { load_ciphertext(t, *b.ctx); }, "truncated");
  }

  bad = good;
  put_u64(bad, kBodySizeAt, uint64_t{1} << 40);
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "exceeds the limit");
  expect_error([&] { load_ciphertext(good, *b.ctx, 1000); }, "exceeds the limit");
  bad = good;
  put_u64(bad, kBodySizeAt, good.size() - kHeader + 8);
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "body size mismatch");
  bad = good;
  bad.push_back(0);
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "trailing bytes");

  expect_error([&] { load_ciphertext(good, *bundle_8192_alpha2().ctx); }, "fingerprint");

  // Coefficient >= modulus: first coefficient of limb 0 set to all ones (7 bytes, 49-bit q_0).
  bad = good;
  for (size_t i = 0; i < 7; ++i) bad[kHeader + 16 + i] = 0xFF;
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "coefficient >= its modulus");

  bad = good;
  bad[kHeader] = 4;  // size 4
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "invalid size 4");
  bad = good;
  bad[kHeader + 1] = 7;  // ntt flag
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "invalid flags");
  bad = good;
  bad[kHeader] = 3;
  bad[kHeader + 2] = 1;  // compact with size 3
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "seeded (compact) ciphertext must have size 2");
  bad = good;
  bad[kHeader + 4] = 9;  // level 9
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "level 9 exceeds");
  bad = good;
  put_u64(bad, kHeader + 8, 0x7FF8000000000000ull);  // NaN scale
  expect_error([&] { load_ciphertext(bad, *b.ctx); }, "scale");
}

TEST(Serialization, SecretKeyOnlyThroughItsOwnUnit) {
  const Bundle& b = bundle_8192();
  const auto sk = secret_key_to_bytes(b.keygen->secret_key(), *b.ctx);
  EXPECT_EQ(sk.size(), kHeader + 8 + b.ctx->n());
  expect_error([&] { load_ciphertext(sk, *b.ctx); }, "refusing to load a SecretKey");
  expect_error([&] { load_public_key(sk, *b.ctx); }, "refusing to load a SecretKey");
  expect_error([&] { load_relin_keys(sk, *b.ctx); }, "refusing to load a SecretKey");
  expect_error([&] { load_galois_keys(sk, *b.ctx); }, "refusing to load a SecretKey");
  expect_error([&] { load_parameters(sk); }, "refusing to load a SecretKey");
  auto bad = sk;
  bad[kHeader + 8 + 5] = 3;
  expect_error([&] { load_secret_key(bad, *b.ctx); }, "not a ternary code");
  expect_error([&] { load_secret_key(sk, *bundle_8192_alpha2().ctx); }, "fingerprint");
  expect_error([&] { load_secret_key(to_bytes(b.pk, *b.ctx), *b.ctx); }, "expected SecretKey");
}

TEST(Serialization, KeyAndParameterLoadersValidate) {
  const Bundle& b = bundle_8192();
  auto pk = to_bytes(b.pk, *b.ctx);
  pk[kHeader + 4] = 9;  // limb count
  expect_error([&] { load_public_key(pk, *b.ctx); }, "9 limbs");
  auto rk = to_bytes(b.rk, *b.ctx);
  rk[kHeader + 4] = 2;  // digits
  expect_error([&] { load_relin_keys(rk, *b.ctx); }, "does not match the context");
  rk = to_bytes(b.rk, *b.ctx);
  for (size_t i = 0; i < 7; ++i) rk[kHeader + 12 + 32 + i] = 0xFF;
  expect_error([&] { load_relin_keys(rk, *b.ctx); }, "coefficient >= its modulus");

  const GaloisKeys gk = b.keygen->create_galois_keys({1, 2});
  auto g = to_bytes(gk, *b.ctx);
  g[kHeader + 4] = 26;  // first element (5) made even
  expect_error([&] { load_galois_keys(g, *b.ctx); }, "invalid or unordered element 26");
  g = to_bytes(gk, *b.ctx);
  put_u64(g, kHeader, 100000);  // count (u32) plus 4 bytes of the first element
  expect_error([&] { load_galois_keys(g, *b.ctx); }, "exceed the number of Galois elements");

  auto params = to_bytes(b.ctx->parameters());
  params[kHeader + 20] ^= 2;  // flip a bit of q_0: no longer prime / ≡ 1 or fingerprint
  expect_error([&] { load_parameters(params); }, "Parameters");
  params = to_bytes(b.ctx->parameters());
  params[kHeader + 1] = 0x21;  // N = 8192 = 0x2000 -> 0x2100: not a power of two
  expect_error([&] { load_parameters(params); }, "not a power of two");
}

}  // namespace heinfer::ckks::test
