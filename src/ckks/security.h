// 128-bit security check for RNS-CKKS parameters.
//
// Limits from the HomomorphicEncryption.org standard: M. Albrecht et al.,
// "Homomorphic Encryption Standard" (2018; in "Protecting Privacy through
// Homomorphic Encryption", Springer 2021), Table 1, 128-bit classical security,
// ternary (uniform {-1, 0, 1}) secret, error σ ≈ 3.2: the largest allowed log2 of
// the full modulus QP (ciphertext primes and special primes together) per ring
// degree N = 2^10 … 2^16.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace heinfer::ckks {

/// Required security. `None` disables the check (tests only; a warning is printed to
/// stderr whenever a context is created with it).
enum class SecurityLevel : uint8_t { None = 0, TC128 = 128 };

/// Whether n is a ring degree heinfer accepts at `level`: a power of two in [2^11, 2^16];
/// with SecurityLevel::None (tests only) down to 2^4, so that tests of large models run
/// with tiny ciphertexts (the kernels take n >= 8; ring/ntt.h).
bool valid_ring_degree(size_t n, SecurityLevel level);
/// The rule valid_ring_degree checks, for error messages ("a power of two in [...]").
std::string ring_degree_rule(SecurityLevel level);

/// Largest log2(QP) in bits allowed at 128-bit security for ring degree n (ternary
/// secret, HE Standard Table 1): 27, 54, 109, 218, 438, 881, 1761 for n = 2^10 … 2^16.
/// Returns 0 for any other n (no secure modulus exists in the table).
int max_log_qp_128(size_t n);

/// Checks log2_qp (the real-valued log2 of the product of all primes, special primes
/// included) against the table for n. With SecurityLevel::TC128 throws
/// std::invalid_argument naming N, log2(QP) and the limit when log2_qp exceeds it (or n
/// is not in the table). With SecurityLevel::None prints a warning to stderr instead.
void check_security(size_t n, double log2_qp, SecurityLevel level);

}  // namespace heinfer::ckks
