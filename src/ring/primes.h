// NTT-friendly prime generation for RNS-CKKS modulus chains.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace heinfer::ring {

/// Deterministic Miller-Rabin primality test, exact for all 64-bit n
/// (bases 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37; Jaeschke 1993).
bool is_prime(uint64_t n);

/// Generates one prime per entry of `bit_sizes`, each q ≡ 1 (mod 2n) and of exactly that
/// many bits (2^(b-1) < q < 2^b), all distinct. Deterministic: for each size, the
/// largest unused primes below 2^b are taken in order. Used for the ciphertext modulus
/// chain q_0..q_L and the special primes.
/// Throws std::invalid_argument if n is not a power of two, a size is outside [20, 60],
/// or not enough primes of a size exist.
std::vector<uint64_t> generate_ntt_primes(const std::vector<int>& bit_sizes, size_t n);

/// The smallest primitive 2n-th root of unity modulo prime q (requires q ≡ 1 mod 2n).
/// Deterministic. Throws std::invalid_argument if q is not ≡ 1 (mod 2n).
uint64_t minimal_primitive_root(uint64_t q, size_t n);

}  // namespace heinfer::ring
