// Encryption: public-key (any party) and symmetric (secret-key holder, seeded).
#pragma once

#include <memory>
#include <optional>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/keys.h"
#include "ckks/plaintext.h"

namespace heinfer::ckks {

class Encryptor {
 public:
  Encryptor(ContextPtr context, const PublicKey& public_key);
  Encryptor(ContextPtr context, const SecretKey& secret_key);
  Encryptor(ContextPtr context, const PublicKey& public_key, const SecretKey& secret_key);

  /// Public-key encryption at the plaintext's level and scale (as in SEAL): over QP,
  /// ct = (pk_0·u + e_0, pk_1·u + e_1) with u ternary, e_i Gaussian, then divided by
  /// P with rounding (which shrinks the noise to about u·e/P + rounding), + m.
  /// Throws std::logic_error without a public key, std::invalid_argument if the
  /// plaintext does not match the context.
  void encrypt(const Plaintext& plain, Ciphertext& out) const;

  /// Symmetric encryption: ct = (-a·s + e + m, a) with a expanded from a fresh seed, so
  /// the result is seeded (Ciphertext::compact halves it). Throws std::logic_error
  /// without a secret key.
  void encrypt_symmetric(const Plaintext& plain, Ciphertext& out) const;

 private:
  void check_plain(const Plaintext& plain) const;
  ContextPtr context_;
  std::optional<PublicKey> public_key_;
  std::optional<SecretKey> secret_key_;
};

}  // namespace heinfer::ckks
