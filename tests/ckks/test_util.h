// Shared helpers for the CKKS scheme tests. Test data only uses std::mt19937_64 with
// fixed seeds; key material comes from the library (libsodium).
#pragma once

#include <algorithm>
#include <cmath>
#include <complex>
#include <memory>
#include <random>
#include <vector>

#include "ckks/context.h"
#include "ckks/decryptor.h"
#include "ckks/encoder.h"
#include "ckks/encryptor.h"
#include "ckks/evaluator.h"
#include "ckks/keygen.h"

namespace heinfer::ckks::test {

inline ContextPtr make_context(size_t n, std::vector<int> q_bits, std::vector<int> p_bits,
                               SecurityLevel level = SecurityLevel::TC128) {
  return CKKSContext::create(EncryptionParameters(n, std::move(q_bits), std::move(p_bits), level));
}

inline std::vector<double> random_reals(size_t count, double bound, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> d(-bound, bound);
  std::vector<double> v(count);
  for (auto& x : v) x = d(rng);
  return v;
}

inline double max_abs_error(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

/// Everything for one parameter set.
struct Bundle {
  ContextPtr ctx;
  std::unique_ptr<KeyGenerator> keygen;
  PublicKey pk;
  RelinKeys rk;
  std::unique_ptr<CKKSEncoder> encoder;
  std::unique_ptr<Encryptor> encryptor;
  std::unique_ptr<Decryptor> decryptor;
  std::unique_ptr<Evaluator> eval;

  explicit Bundle(ContextPtr c) : ctx(std::move(c)) {
    keygen = std::make_unique<KeyGenerator>(ctx);
    pk = keygen->create_public_key();
    rk = keygen->create_relin_keys();
    encoder = std::make_unique<CKKSEncoder>(ctx);
    encryptor = std::make_unique<Encryptor>(ctx, pk, keygen->secret_key());
    decryptor = std::make_unique<Decryptor>(ctx, keygen->secret_key());
    eval = std::make_unique<Evaluator>(ctx);
  }

  /// Encrypts N packed reals at `level` (default: top) with the public key.
  Ciphertext encrypt_packed(const std::vector<double>& v, double scale, size_t level) const {
    Plaintext p;
    encoder->encode_packed(v, scale, level, p);
    Ciphertext c;
    encryptor->encrypt(p, c);
    return c;
  }
  Ciphertext encrypt_real(const std::vector<double>& v, double scale, size_t level) const {
    Plaintext p;
    encoder->encode(v, scale, level, p);
    Ciphertext c;
    encryptor->encrypt(p, c);
    return c;
  }
  std::vector<double> decrypt_packed(const Ciphertext& c) const {
    Plaintext p;
    decryptor->decrypt(c, p);
    std::vector<double> v;
    encoder->decode_packed(p, v);
    return v;
  }
  std::vector<double> decrypt_real(const Ciphertext& c) const {
    Plaintext p;
    decryptor->decrypt(c, p);
    std::vector<double> v;
    encoder->decode(p, v);
    return v;
  }
};

/// A shared bundle per parameter set (key generation is the slow part of the tests).
/// N = 8192, chain {49, 40, 40, 40} + special {49}: log2 QP < 218, 128-bit secure.
inline const Bundle& bundle_8192() {
  static const Bundle b(make_context(8192, {49, 40, 40, 40}, {49}));
  return b;
}

/// N = 8192, two special primes (α = 2: two-prime digits, a partial digit at odd levels).
/// Chain {40, 30, 30, 30} + special {44, 44}: log2 QP < 218, scale 2^30.
inline const Bundle& bundle_8192_alpha2() {
  static const Bundle b(make_context(8192, {40, 30, 30, 30}, {44, 44}));
  return b;
}

/// N = 2048, insecure (tests only), long chain with α = 1.
inline const Bundle& bundle_2048_insecure() {
  static const Bundle b(make_context(2048, {50, 40, 40, 40, 40}, {50}, SecurityLevel::None));
  return b;
}

}  // namespace heinfer::ckks::test
