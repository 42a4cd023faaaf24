// Decryption: m = c_0 + c_1·s (+ c_2·s^2) in the NTT domain.
#pragma once

#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/keys.h"
#include "ckks/plaintext.h"

namespace heinfer::ckks {

class Decryptor {
 public:
  /// Throws std::invalid_argument if the key does not match the context.
  Decryptor(ContextPtr context, const SecretKey& secret_key);

  /// Plaintext at the ciphertext's level and scale (NTT form). Accepts sizes 2 and 3
  /// and compact seeded ciphertexts. Throws std::invalid_argument on a shape mismatch
  /// or a ciphertext not in NTT form.
  void decrypt(const Ciphertext& ct, Plaintext& out) const;

 private:
  ContextPtr context_;
  SecretKey secret_;
  SecretKey secret_squared_;  // s^2 over the q limbs [limb][coeff]; wiped with the decryptor
};

}  // namespace heinfer::ckks
