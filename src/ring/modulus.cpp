#include "ring/modulus.h"

#include <stdexcept>
#include <string>

namespace heinfer::ring {

Modulus::Modulus(uint64_t q) : value(q) {
  if (q < 2 || q >= (uint64_t{1} << 61)) {
    throw std::invalid_argument("Modulus: value " + std::to_string(q) +
                                " out of range [2, 2^61)");
  }
  bit_count = 64 - __builtin_clzll(q);
  // floor(2^128 / q): compute (2^128 - 1) / q, then fix up (q is not a power of two
  // when it is an odd prime > 2; for q a power of two the -1 variant differs).
  const u128 all_ones = ~static_cast<u128>(0);
  u128 ratio = all_ones / q;
  if (all_ones % q == q - 1) ratio += 1;
  barrett_lo = static_cast<uint64_t>(ratio);
  barrett_hi = static_cast<uint64_t>(ratio >> 64);
}

uint64_t pow_mod(uint64_t base, uint64_t exp, const Modulus& m) {
  uint64_t result = 1 % m.value;
  base = reduce_64(base, m);
  while (exp) {
    if (exp & 1) result = mul_mod(result, base, m);
    base = mul_mod(base, base, m);
    exp >>= 1;
  }
  return result;
}

uint64_t inv_mod(uint64_t a, const Modulus& m) {
  a = reduce_64(a, m);
  if (a == 0) throw std::invalid_argument("inv_mod: zero has no inverse");
  return pow_mod(a, m.value - 2, m);
}

}  // namespace heinfer::ring
