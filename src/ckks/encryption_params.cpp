#include "ckks/encryption_params.h"

#include <stdexcept>
#include <utility>

#include "ring/primes.h"

namespace heinfer::ckks {

EncryptionParameters::EncryptionParameters(size_t n, std::vector<int> coeff_bits,
                                           std::vector<int> special_bits,
                                           SecurityLevel security)
    : n_(n), security_(security) {
  set_coeff_modulus_bits(std::move(coeff_bits), std::move(special_bits));
}

EncryptionParameters& EncryptionParameters::set_poly_modulus_degree(size_t n) {
  n_ = n;
  return *this;
}

EncryptionParameters& EncryptionParameters::set_coeff_modulus_bits(std::vector<int> coeff_bits,
                                                                   std::vector<int> special_bits) {
  coeff_bits_ = std::move(coeff_bits);
  special_bits_ = std::move(special_bits);
  coeff_primes_.clear();
  special_primes_.clear();
  return *this;
}

EncryptionParameters& EncryptionParameters::set_coeff_modulus(
    std::vector<uint64_t> coeff_primes, std::vector<uint64_t> special_primes) {
  coeff_primes_ = std::move(coeff_primes);
  special_primes_ = std::move(special_primes);
  coeff_bits_.clear();
  special_bits_.clear();
  return *this;
}

EncryptionParameters& EncryptionParameters::set_security_level(SecurityLevel level) {
  security_ = level;
  return *this;
}

void EncryptionParameters::resolve_primes(std::vector<uint64_t>& coeff,
                                          std::vector<uint64_t>& special) const {
  if (has_explicit_primes() || !special_primes_.empty()) {
    coeff = coeff_primes_;
    special = special_primes_;
    return;
  }
  if (coeff_bits_.empty()) {
    throw std::invalid_argument("EncryptionParameters: no coefficient modulus set");
  }
  std::vector<int> all(special_bits_);
  all.insert(all.end(), coeff_bits_.begin(), coeff_bits_.end());
  const std::vector<uint64_t> primes = ring::generate_ntt_primes(all, n_);
  special.assign(primes.begin(), primes.begin() + static_cast<long>(special_bits_.size()));
  coeff.assign(primes.begin() + static_cast<long>(special_bits_.size()), primes.end());
}

}  // namespace heinfer::ckks
