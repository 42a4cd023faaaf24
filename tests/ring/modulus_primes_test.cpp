// Modulus (Barrett/Shoup), primality, NTT-friendly prime generation, primitive roots.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include "ring/modulus.h"
#include "ring/primes.h"
#include "ring_test_util.h"

namespace heinfer::ring::test {
namespace {

bool trial_division_prime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

TEST(IsPrime, SmallNumbersMatchTrialDivision) {
  for (uint64_t n = 0; n < 20000; ++n) ASSERT_EQ(is_prime(n), trial_division_prime(n)) << n;
}

TEST(IsPrime, KnownPrimes) {
  for (uint64_t p : {uint64_t{2}, uint64_t{3}, uint64_t{37}, uint64_t{41}, uint64_t{12289},
                     uint64_t{2147483647},                // 2^31 - 1
                     uint64_t{1000000007},
                     (uint64_t{1} << 61) - 1,             // Mersenne prime
                     uint64_t{4611686018427387847},       // largest prime below 2^62
                     uint64_t{18446744073709551557u}}) {  // largest 64-bit prime
    EXPECT_TRUE(is_prime(p)) << p;
  }
}

TEST(IsPrime, CarmichaelNumbersAndStrongPseudoprimes) {
  const std::vector<uint64_t> composites = {
      0, 1, 4, 561, 1105, 1729, 2465, 2821, 6601, 8911, 41041, 825265, 321197185,
      5394826801, 232250619601, 9746347772161,  // Carmichael numbers
      2047, 3277, 4033, 4681, 8321,              // strong pseudoprimes to base 2
      1373653, 25326001, 3215031751,             // to bases 2, 3 (, 5 (, 7))
      2152302898747, 3474749660383, 341550071728321,  // to bases 2 .. 13 / 17
      3825123056546413051,                       // to bases 2 .. 23
      uint64_t{1000003} * 1000003, uint64_t{4294967291} * 4294967279,  // squares / semiprimes
      (uint64_t{1} << 61) + 1, 18446744073709551615u};
  for (uint64_t c : composites) EXPECT_FALSE(is_prime(c)) << c;
}

TEST(GenerateNttPrimes, Properties) {
  for (size_t n : {size_t{1024}, size_t{8192}, size_t{1} << 16}) {
    const std::vector<int> sizes = {60, 50, 50, 50, 49, 40, 40, 30, 55, 36};
    const std::vector<uint64_t> primes = generate_ntt_primes(sizes, n);
    ASSERT_EQ(primes.size(), sizes.size());
    std::set<uint64_t> distinct(primes.begin(), primes.end());
    EXPECT_EQ(distinct.size(), primes.size());
    for (size_t i = 0; i < primes.size(); ++i) {
      const uint64_t q = primes[i];
      SCOPED_TRACE(q);
      EXPECT_EQ(64 - __builtin_clzll(q), sizes[i]);  // exactly that many bits
      EXPECT_EQ(q % (2 * n), 1u);
      EXPECT_TRUE(is_prime(q));
    }
    // Same size: the largest first, then the next ones down.
    EXPECT_GT(primes[1], primes[2]);
    EXPECT_GT(primes[2], primes[3]);
    EXPECT_EQ(generate_ntt_primes(sizes, n), primes);  // deterministic
    EXPECT_EQ(generate_ntt_primes({50}, n)[0], primes[1]);
  }
}

TEST(GenerateNttPrimes, LargestCandidateIsTaken) {
  // No prime ≡ 1 (mod 2n) between the returned one and 2^b.
  const size_t n = 4096;
  for (int bits : {30, 45, 50, 60}) {
    const uint64_t q = generate_ntt_primes({bits}, n)[0];
    for (uint64_t c = q + 2 * n; c < (uint64_t{1} << bits); c += 2 * n) {
      EXPECT_FALSE(is_prime(c)) << c;
    }
  }
}

TEST(GenerateNttPrimes, Errors) {
  EXPECT_THROW(generate_ntt_primes({40}, 1000), std::invalid_argument);
  EXPECT_THROW(generate_ntt_primes({40}, 0), std::invalid_argument);
  EXPECT_THROW(generate_ntt_primes({40}, 1), std::invalid_argument);
  EXPECT_THROW(generate_ntt_primes({19}, 1024), std::invalid_argument);
  EXPECT_THROW(generate_ntt_primes({61}, 1024), std::invalid_argument);
  EXPECT_THROW(generate_ntt_primes({40, 0}, 1024), std::invalid_argument);
  // 20-bit primes ≡ 1 mod 2^17: four candidates in (2^19, 2^20), not all prime.
  EXPECT_THROW(generate_ntt_primes(std::vector<int>(4, 20), size_t{1} << 16),
               std::invalid_argument);
  EXPECT_TRUE(generate_ntt_primes({}, 1024).empty());
}

TEST(MinimalPrimitiveRoot, IsTheSmallestPrimitive2nthRoot) {
  const std::vector<std::pair<uint64_t, size_t>> cases = {{97, 8}, {12289, 2048}, {7681, 256}};
  for (auto [q, n] : cases) {
    const Modulus m(q);
    const uint64_t r = minimal_primitive_root(q, n);
    EXPECT_EQ(pow_mod(r, n, m), q - 1);
    uint64_t smallest = 0;  // brute force over all x: x^n = -1 means primitive of order 2n
    for (uint64_t x = 2; x < q && smallest == 0; ++x) {
      if (pow_mod(x, n, m) == q - 1) smallest = x;
    }
    EXPECT_EQ(r, smallest) << q;
  }
  const uint64_t q = ntt_prime(50, 1 << 14);
  const uint64_t r = minimal_primitive_root(q, 1 << 14);
  EXPECT_EQ(pow_mod(r, 1 << 14, Modulus(q)), q - 1);
  EXPECT_THROW(minimal_primitive_root(12289, 8192), std::invalid_argument);
  EXPECT_THROW(minimal_primitive_root(2, 1), std::invalid_argument);
}

TEST(Modulus, RangeAndConstants) {
  EXPECT_THROW(Modulus(0), std::invalid_argument);
  EXPECT_THROW(Modulus(1), std::invalid_argument);
  EXPECT_THROW(Modulus(uint64_t{1} << 61), std::invalid_argument);
  EXPECT_THROW(Modulus(~uint64_t{0}), std::invalid_argument);
  for (uint64_t q : {uint64_t{2}, uint64_t{3}, uint64_t{12289}, ntt_prime(50, 2),
                     (uint64_t{1} << 50) + 1, ntt_prime(60, 2), (uint64_t{1} << 61) - 1}) {
    const Modulus m(q);
    EXPECT_EQ(m.bit_count, 64 - __builtin_clzll(q));
    // barrett = floor(2^128 / q): 0 <= 2^128 - barrett·q < q.
    const u128 ratio = (u128{m.barrett_hi} << 64) | m.barrett_lo;
    const u128 rem = u128{0} - ratio * q;  // 2^128 - ratio·q, mod 2^128
    EXPECT_LT(rem, u128{q}) << q;
  }
}

TEST(Modulus, Reduce128OnExtremeValues) {
  std::mt19937_64 rng(31);
  for (uint64_t q : {uint64_t{2}, uint64_t{3}, uint64_t{12289}, ntt_prime(30, 2),
                     ntt_prime(50, 2), ntt_prime(55, 2), ntt_prime(60, 2),
                     (uint64_t{1} << 61) - 1}) {
    const Modulus m(q);
    const u128 max128 = ~u128{0};
    std::vector<u128> xs = {0,
                            1,
                            q - 1,
                            q,
                            q + 1,
                            ~uint64_t{0},
                            u128{1} << 64,
                            max128,
                            max128 - 1,
                            max128 - q,
                            u128{q - 1} * (q - 1),
                            (u128{q} << 64) - 1,
                            u128{q} << 64,
                            max128 / q * q,
                            max128 / q * q - 1};
    for (int i = 0; i < 2000; ++i) xs.push_back((u128{rng()} << 64) | rng());
    for (int i = 0; i < 200; ++i) xs.push_back(u128{rng()} >> (rng() % 64));
    for (u128 x : xs) ASSERT_EQ(reduce_128(x, m), static_cast<uint64_t>(x % q));
    for (int i = 0; i < 1000; ++i) {
      const uint64_t a = rng(), b = rng() % q;
      ASSERT_EQ(reduce_64(a, m), a % q);
      ASSERT_EQ(mul_mod(a % q, b, m), ref_mul(a % q, b, q));
    }
  }
}

TEST(Modulus, ShoupMultiplication) {
  std::mt19937_64 rng(32);
  for (uint64_t q : {uint64_t{3}, ntt_prime(40, 2), ntt_prime(50, 2), ntt_prime(60, 2),
                     (uint64_t{1} << 61) - 1}) {
    for (uint64_t w : {uint64_t{0}, uint64_t{1}, q - 1, rng() % q, rng() % q}) {
      const uint64_t ws = shoup_precompute(w, q);
      for (uint64_t x : {uint64_t{0}, uint64_t{1}, q - 1, q, 4 * q - 1, ~uint64_t{0}, rng(),
                         rng() % q}) {
        const uint64_t lazy = mul_mod_shoup_lazy(x, w, ws, q);
        EXPECT_LT(lazy, 2 * q);
        EXPECT_EQ(lazy % q, ref_mul(x % q, w, q));
        EXPECT_EQ(mul_mod_shoup(x, w, ws, q), ref_mul(x % q, w, q));
      }
    }
  }
}

TEST(Modulus, PowAndInverse) {
  const Modulus m(ntt_prime(60, 2));
  std::mt19937_64 rng(33);
  EXPECT_EQ(pow_mod(5, 0, m), 1u);
  EXPECT_EQ(pow_mod(0, 0, m), 1u);
  EXPECT_EQ(pow_mod(0, 5, m), 0u);
  for (int i = 0; i < 100; ++i) {
    const uint64_t a = 1 + rng() % (m.value - 1);
    EXPECT_EQ(pow_mod(a, m.value - 1, m), 1u);  // Fermat
    EXPECT_EQ(mul_mod(a, inv_mod(a, m), m), 1u);
  }
  EXPECT_EQ(inv_mod(m.value + 1, m), 1u);
  EXPECT_THROW(inv_mod(0, m), std::invalid_argument);
  EXPECT_THROW(inv_mod(m.value, m), std::invalid_argument);
}

TEST(Modulus, AddSubNegate) {
  const uint64_t q = (uint64_t{1} << 61) - 1;
  EXPECT_EQ(add_mod(q - 1, q - 1, q), q - 2);
  EXPECT_EQ(add_mod(0, 0, q), 0u);
  EXPECT_EQ(sub_mod(0, q - 1, q), 1u);
  EXPECT_EQ(sub_mod(q - 1, 0, q), q - 1);
  EXPECT_EQ(negate_mod(0, q), 0u);
  EXPECT_EQ(negate_mod(1, q), q - 1);
}

}  // namespace
}  // namespace heinfer::ring::test
