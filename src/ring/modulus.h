// Word-sized modular arithmetic for RNS limbs.
//
// Every RNS limb q_i is an odd prime below 2^61 (the IFMA kernels need q < 2^50;
// see cpu_features.h). Values are uint64_t; functions marked "lazy" return
// results in [0, 2q) or [0, 4q) as documented, the others in [0, q).
//
// Algorithms:
//  - Barrett reduction with a 128-bit ratio floor(2^128 / q): P. Barrett,
//    "Implementing the RSA public key encryption algorithm on a standard DSP",
//    CRYPTO 1986; word layout as in Microsoft SEAL (util/uintarithsmallmod.h).
//  - Shoup's multiplication by a precomputed constant w' = floor(w * 2^64 / q):
//    V. Shoup, NTL; D. Harvey, "Faster arithmetic for number-theoretic
//    transforms", J. Symb. Comp. 2014, section 2.
#pragma once

#include <cstdint>

namespace heinfer::ring {

__extension__ typedef unsigned __int128 u128;

/// A prime modulus with its Barrett constants. Plain data; cheap to copy.
struct Modulus {
  uint64_t value = 0;
  int bit_count = 0;
  /// floor(2^128 / value) as two 64-bit words.
  uint64_t barrett_lo = 0;
  uint64_t barrett_hi = 0;

  Modulus() = default;
  /// Throws std::invalid_argument if q < 2 or q >= 2^61.
  explicit Modulus(uint64_t q);
};

inline uint64_t add_mod(uint64_t a, uint64_t b, uint64_t q) {
  uint64_t s = a + b;
  return s >= q ? s - q : s;
}

inline uint64_t sub_mod(uint64_t a, uint64_t b, uint64_t q) {
  return a >= b ? a - b : a + q - b;
}

inline uint64_t negate_mod(uint64_t a, uint64_t q) { return a == 0 ? 0 : q - a; }

/// Reduces a 128-bit value x < q * 2^64 ... any 128-bit x, modulo q (Barrett).
inline uint64_t reduce_128(u128 x, const Modulus& m) {
  const uint64_t x_lo = static_cast<uint64_t>(x);
  const uint64_t x_hi = static_cast<uint64_t>(x >> 64);
  // quotient estimate = floor(x * ratio / 2^128), keeping only what matters.
  const u128 lo_lo = static_cast<u128>(x_lo) * m.barrett_lo;
  const u128 lo_hi = static_cast<u128>(x_lo) * m.barrett_hi;
  const u128 hi_lo = static_cast<u128>(x_hi) * m.barrett_lo;
  const uint64_t carry = static_cast<uint64_t>(lo_lo >> 64);
  const u128 mid = lo_hi + carry;  // cannot overflow: < 2^128
  const u128 mid2 = static_cast<u128>(static_cast<uint64_t>(mid)) + static_cast<uint64_t>(hi_lo);
  const uint64_t q_est = x_hi * m.barrett_hi + static_cast<uint64_t>(mid >> 64) +
                         static_cast<uint64_t>(hi_lo >> 64) + static_cast<uint64_t>(mid2 >> 64);
  uint64_t r = x_lo - q_est * m.value;
  return r >= m.value ? r - m.value : r;
}

/// a * b mod q for a, b < 2^64 with a * b < q * 2^64 (true for a, b < q).
inline uint64_t mul_mod(uint64_t a, uint64_t b, const Modulus& m) {
  return reduce_128(static_cast<u128>(a) * b, m);
}

/// Reduces one word modulo q.
inline uint64_t reduce_64(uint64_t a, const Modulus& m) {
  return reduce_128(static_cast<u128>(a), m);
}

/// Shoup constant floor(w * 2^64 / q) for a fixed multiplicand w < q.
inline uint64_t shoup_precompute(uint64_t w, uint64_t q) {
  return static_cast<uint64_t>((static_cast<u128>(w) << 64) / q);
}

/// x * w mod q in [0, 2q) (lazy), for any x < 2^64 and w < q.
inline uint64_t mul_mod_shoup_lazy(uint64_t x, uint64_t w, uint64_t w_shoup, uint64_t q) {
  const uint64_t hi = static_cast<uint64_t>((static_cast<u128>(x) * w_shoup) >> 64);
  return x * w - hi * q;
}

/// x * w mod q in [0, q), for any x < 2^64 and w < q.
inline uint64_t mul_mod_shoup(uint64_t x, uint64_t w, uint64_t w_shoup, uint64_t q) {
  uint64_t r = mul_mod_shoup_lazy(x, w, w_shoup, q);
  return r >= q ? r - q : r;
}

/// base^exp mod q.
uint64_t pow_mod(uint64_t base, uint64_t exp, const Modulus& m);

/// Multiplicative inverse of a modulo prime q. Throws std::invalid_argument if a ≡ 0.
uint64_t inv_mod(uint64_t a, const Modulus& m);

}  // namespace heinfer::ring
