// Key generation: ternary secret, public key, relinearization and Galois keys.
#pragma once

#include <cstdint>
#include <vector>

#include "ckks/context.h"
#include "ckks/keys.h"

namespace heinfer::ckks {

class KeyGenerator {
 public:
  /// Samples a fresh uniform ternary secret (libsodium CSPRNG).
  explicit KeyGenerator(ContextPtr context);
  /// Uses an existing secret. Throws std::invalid_argument if its shape does not match.
  KeyGenerator(ContextPtr context, const SecretKey& secret);

  const SecretKey& secret_key() const { return secret_; }

  /// pk = (-a·s + e, a) over all key primes; a is seeded (stored as a 32-byte seed).
  PublicKey create_public_key() const;
  /// Key switching s^2 -> s (hybrid, see keys.h). Throws std::invalid_argument when the
  /// context has no special prime (as do the Galois key functions).
  RelinKeys create_relin_keys() const;
  /// Keys for left rotations by each step (negative: right; 5^step mod 2N) and, if
  /// `conjugation`, for complex conjugation (2N - 1). Duplicates are merged; step 0 is
  /// ignored. Only the elements asked for are generated.
  GaloisKeys create_galois_keys(const std::vector<int>& steps, bool conjugation = false) const;
  /// Keys for explicit Galois elements (odd, in [3, 2N)). Throws std::invalid_argument
  /// for an invalid element.
  GaloisKeys create_galois_keys_for_elements(const std::vector<uint32_t>& elements) const;

 private:
  /// A key switching new_secret -> s; new_secret is NTT form over all key primes.
  KeySwitchingKey make_key_switching_key(const uint64_t* new_secret) const;

  ContextPtr context_;
  SecretKey secret_;
};

}  // namespace heinfer::ckks
