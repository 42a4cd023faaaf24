#include "ring/primes.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "ring/modulus.h"

namespace heinfer::ring {

namespace {

uint64_t pow_mod_u128(uint64_t b, uint64_t e, uint64_t m) {
  u128 result = 1 % m;
  u128 base = b % m;
  while (e) {
    if (e & 1) result = (result * base) % m;
    base = (base * base) % m;
    e >>= 1;
  }
  return static_cast<uint64_t>(result);
}

}  // namespace

bool is_prime(uint64_t n) {
  if (n < 2) return false;
  static constexpr uint64_t kBases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  for (uint64_t p : kBases) {
    if (n % p == 0) return n == p;
  }
  uint64_t d = n - 1;
  int s = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++s;
  }
  for (uint64_t a : kBases) {
    uint64_t x = pow_mod_u128(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int r = 1; r < s; ++r) {
      x = static_cast<uint64_t>((static_cast<u128>(x) * x) % n);
      if (x == n - 1) {
        composite = false;
        break;
      }
    }
    if (composite) return false;
  }
  return true;
}

std::vector<uint64_t> generate_ntt_primes(const std::vector<int>& bit_sizes, size_t n) {
  if (n < 2 || (n & (n - 1)) != 0) {
    throw std::invalid_argument("generate_ntt_primes: ring degree " + std::to_string(n) +
                                " is not a power of two");
  }
  const uint64_t step = 2 * static_cast<uint64_t>(n);
  std::vector<uint64_t> result;
  result.reserve(bit_sizes.size());
  for (int bits : bit_sizes) {
    if (bits < 20 || bits > 60) {
      throw std::invalid_argument("generate_ntt_primes: prime size " + std::to_string(bits) +
                                  " bits is outside the supported range [20, 60]");
    }
    const uint64_t upper = uint64_t{1} << bits;
    const uint64_t lower = uint64_t{1} << (bits - 1);
    // Largest candidate below 2^bits with candidate ≡ 1 mod 2n.
    uint64_t candidate = upper - step + 1;
    bool found = false;
    while (candidate > lower) {
      if (is_prime(candidate) &&
          std::find(result.begin(), result.end(), candidate) == result.end()) {
        found = true;
        break;
      }
      candidate -= step;
    }
    if (!found) {
      throw std::invalid_argument("generate_ntt_primes: not enough " + std::to_string(bits) +
                                  "-bit primes congruent to 1 mod " + std::to_string(step));
    }
    result.push_back(candidate);
  }
  return result;
}

uint64_t minimal_primitive_root(uint64_t q, size_t n) {
  const uint64_t order = 2 * static_cast<uint64_t>(n);
  if (q < 3 || (q - 1) % order != 0) {
    throw std::invalid_argument("minimal_primitive_root: " + std::to_string(q) +
                                " is not congruent to 1 mod " + std::to_string(order));
  }
  const Modulus m(q);
  const uint64_t cofactor = (q - 1) / order;
  // A generator candidate g gives root = g^((q-1)/2n); it is primitive of order 2n
  // iff root^n == q - 1. Among all primitive roots (odd powers of one root), take the smallest.
  uint64_t root = 0;
  for (uint64_t g = 2; g < q; ++g) {
    uint64_t r = pow_mod(g, cofactor, m);
    if (pow_mod(r, order / 2, m) == q - 1) {
      root = r;
      break;
    }
  }
  if (root == 0) throw std::invalid_argument("minimal_primitive_root: no root found");
  const uint64_t root_sq = mul_mod(root, root, m);
  uint64_t best = root;
  uint64_t current = root;
  for (uint64_t i = 1; i < n; ++i) {  // odd powers root^(2i+1)
    current = mul_mod(current, root_sq, m);
    best = std::min(best, current);
  }
  return best;
}

}  // namespace heinfer::ring
