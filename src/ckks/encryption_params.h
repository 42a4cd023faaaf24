// User-facing RNS-CKKS parameters: ring degree N, the ciphertext modulus chain
// q_0..q_L and the special primes p_0..p_{K-1} used by hybrid key switching.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ckks/security.h"

namespace heinfer::ckks {

/// Parameters are given either as bit sizes (primes are then generated
/// deterministically by generate_ntt_primes) or as explicit primes. Validation happens
/// in CKKSContext::create, not here.
class EncryptionParameters {
 public:
  EncryptionParameters() = default;
  /// n = poly modulus degree N (ckks/security.h: valid_ring_degree; checked by CKKSContext).
  EncryptionParameters(size_t n, std::vector<int> coeff_bits, std::vector<int> special_bits,
                       SecurityLevel security = SecurityLevel::TC128);

  EncryptionParameters& set_poly_modulus_degree(size_t n);
  /// Bit sizes (each in [20, 60]; keep <= 49 for the AVX-512 IFMA kernels) of the chain
  /// q_0..q_L and of the special primes (at least one). Clears explicit primes.
  EncryptionParameters& set_coeff_modulus_bits(std::vector<int> coeff_bits,
                                               std::vector<int> special_bits);
  /// Explicit primes (each ≡ 1 mod 2N, < 2^61, all distinct). Clears bit sizes.
  EncryptionParameters& set_coeff_modulus(std::vector<uint64_t> coeff_primes,
                                          std::vector<uint64_t> special_primes);
  EncryptionParameters& set_security_level(SecurityLevel level);

  size_t poly_modulus_degree() const { return n_; }
  SecurityLevel security_level() const { return security_; }
  bool has_explicit_primes() const { return !coeff_primes_.empty(); }
  const std::vector<int>& coeff_bits() const { return coeff_bits_; }
  const std::vector<int>& special_bits() const { return special_bits_; }

  /// The chain and special primes: the explicit ones, or generated from the bit sizes
  /// (special primes are generated first so they are the largest of their size).
  /// Throws std::invalid_argument if nothing was set or generation fails.
  void resolve_primes(std::vector<uint64_t>& coeff, std::vector<uint64_t>& special) const;

 private:
  size_t n_ = 0;
  std::vector<int> coeff_bits_, special_bits_;
  std::vector<uint64_t> coeff_primes_, special_primes_;
  SecurityLevel security_ = SecurityLevel::TC128;
};

}  // namespace heinfer::ckks
