// Negacyclic NTT: against naive convolution and direct evaluation, round trips, and the
// portable, AVX2 and AVX-512 IFMA paths compared bit for bit.
#include "ring/ntt.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <stdexcept>
#include <vector>

#include "ring/poly_arith.h"
#include "ring_test_util.h"

namespace heinfer::ring::test {
namespace {

/// c = a · b in Z_q[X]/(X^n + 1), O(n^2).
std::vector<uint64_t> naive_negacyclic(const std::vector<uint64_t>& a,
                                       const std::vector<uint64_t>& b, uint64_t q) {
  const size_t n = a.size();
  std::vector<u128> pos(n, 0), neg(n, 0);
  std::vector<uint64_t> c(n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      const uint64_t p = ref_mul(a[i], b[j], q);
      if (i + j < n) {
        pos[i + j] += p;
      } else {
        neg[i + j - n] += p;
      }
    }
  }
  for (size_t k = 0; k < n; ++k) {
    const uint64_t s = static_cast<uint64_t>(pos[k] % q), t = static_cast<uint64_t>(neg[k] % q);
    c[k] = s >= t ? s - t : s + q - t;
  }
  return c;
}

uint64_t eval_poly(const std::vector<uint64_t>& a, uint64_t x, const Modulus& m) {
  uint64_t acc = 0;  // Horner
  for (size_t i = a.size(); i-- > 0;) acc = add_mod(mul_mod(acc, x, m), a[i], m.value);
  return acc;
}

struct Case {
  int bits;
  size_t n;
};

class NttPaths : public ::testing::TestWithParam<SimdPath> {
 protected:
  void SetUp() override {
    if (!select_path(GetParam())) GTEST_SKIP() << missing(GetParam());
  }
  SimdGuard guard_;
};

TEST_P(NttPaths, ConvolutionMatchesNaive) {
  std::mt19937_64 rng(11);
  const std::vector<Case> cases = {
      {30, 8},   {49, 8},   {60, 8},   {50, 16},  {40, 16},  {55, 32},  {49, 32},
      {50, 64},  {30, 64},  {60, 128}, {49, 128}, {40, 256}, {50, 256}, {55, 512},
      {49, 512}, {30, 1024}, {50, 1024}, {60, 1024}, {49, 2048}, {49, 4096}, {60, 4096}};
  for (const Case& c : cases) {
    SCOPED_TRACE("bits=" + std::to_string(c.bits) + " n=" + std::to_string(c.n));
    const Modulus m(ntt_prime(c.bits, c.n));
    const NTTTables t(c.n, m);
    EXPECT_EQ(t.path(), expected_path(GetParam(), m.value, c.n));
    std::vector<uint64_t> a = random_with_edges(c.n, m.value, rng);
    std::vector<uint64_t> b = random_vector(c.n, m.value, rng);
    b[0] = m.value - 1;
    const std::vector<uint64_t> expect = naive_negacyclic(a, b, m.value);
    t.forward(a.data());
    t.forward(b.data());
    multiply_poly(a.data(), b.data(), a.data(), c.n, m);
    t.inverse(a.data());
    EXPECT_EQ(a, expect);
  }
}

TEST_P(NttPaths, ForwardIsEvaluationAtOddPowersInBitReversedOrder) {
  std::mt19937_64 rng(12);
  for (const Case& c : std::vector<Case>{{49, 16}, {50, 64}, {30, 1024}, {60, 256}, {49, 8192}}) {
    SCOPED_TRACE("bits=" + std::to_string(c.bits) + " n=" + std::to_string(c.n));
    const Modulus m(ntt_prime(c.bits, c.n));
    const NTTTables t(c.n, m);
    const std::vector<uint64_t> a = random_vector(c.n, m.value, rng);
    std::vector<uint64_t> f = a;
    t.forward(f.data());
    for (size_t j : {size_t{0}, size_t{1}, size_t{2}, size_t{5}, c.n / 2 + 1, c.n - 1}) {
      const uint64_t e = 2 * bit_reverse(static_cast<uint32_t>(j), t.log_n()) + 1;
      EXPECT_EQ(f[j], eval_poly(a, pow_mod(t.root(), e, m), m)) << "slot " << j;
    }
  }
}

TEST_P(NttPaths, InverseOfForwardIsIdentity) {
  std::mt19937_64 rng(13);
  for (int bits : {30, 40, 49, 50, 55, 60}) {
    for (size_t n = 8; n <= (size_t{1} << 15); n <<= 1) {
      SCOPED_TRACE("bits=" + std::to_string(bits) + " n=" + std::to_string(n));
      const Modulus m(ntt_prime(bits, n));
      const NTTTables t(n, m);
      const uint64_t q = m.value;
      std::vector<std::vector<uint64_t>> inputs = {random_with_edges(n, q, rng),
                                                   std::vector<uint64_t>(n, 0),
                                                   std::vector<uint64_t>(n, q - 1)};
      std::vector<uint64_t> alt(n);
      for (size_t i = 0; i < n; ++i) alt[i] = i % 2 ? q - 1 : 0;
      inputs.push_back(alt);
      for (const auto& in : inputs) {
        std::vector<uint64_t> a = in;
        t.forward(a.data());
        for (uint64_t x : a) ASSERT_LT(x, q);
        t.inverse(a.data());
        ASSERT_EQ(a, in);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ring, NttPaths, ::testing::ValuesIn(kAllPaths),
                         [](const auto& info) { return path_name(info.param); });

// The dispatching forward()/inverse() under each SIMD path against the portable
// forward_scalar()/inverse_scalar(), bit for bit, on random and edge inputs (48- and 49-bit
// primes make the AVX2 transforms reduce at some stages, the others do not).
class NttSimdPaths : public ::testing::TestWithParam<SimdPath> {};

TEST_P(NttSimdPaths, BitIdenticalToPortable) {
  SimdGuard guard;
  if (!select_path(GetParam())) GTEST_SKIP() << missing(GetParam());
  std::mt19937_64 rng(14);
  size_t checked_simd = 0;
  for (int bits : {20, 30, 40, 45, 48, 49, 50}) {
    for (size_t n = 8; n <= (size_t{1} << 17); n <<= 1) {
      if (bits == 20 && n > 256) continue;  // too few 20-bit primes ≡ 1 mod 2n
      SCOPED_TRACE("bits=" + std::to_string(bits) + " n=" + std::to_string(n));
      const Modulus m(ntt_prime(bits, n));
      const NTTTables t(n, m);
      const uint64_t q = m.value;
      checked_simd += t.path() == GetParam();
      for (int round = 0; round < 2; ++round) {
        const std::vector<uint64_t> in =
            round == 0 ? random_with_edges(n, q, rng) : std::vector<uint64_t>(n, q - 1);
        std::vector<uint64_t> x = in, y = in;
        t.forward(x.data());
        t.forward_scalar(y.data());
        ASSERT_EQ(x, y);
        x = in;
        y = in;
        t.inverse(x.data());  // the inverse of arbitrary data, not only of forward output
        t.inverse_scalar(y.data());
        ASSERT_EQ(x, y);
      }
    }
  }
  EXPECT_GT(checked_simd, 50u);
}

// One table object switched between paths at run time gives the same transforms.
TEST_P(NttSimdPaths, PathsAgreeThroughSetSimdPath) {
  SimdGuard guard;
  if (!select_path(GetParam())) GTEST_SKIP() << missing(GetParam());
  std::mt19937_64 rng(15);
  const size_t n = 4096;
  const Modulus m(ntt_prime(45, n));
  const NTTTables t(n, m);
  const std::vector<uint64_t> in = random_with_edges(n, m.value, rng);
  std::vector<uint64_t> portable = in, simd = in;
  set_simd_path(SimdPath::Portable);
  EXPECT_EQ(t.path(), SimdPath::Portable);
  t.forward(portable.data());
  set_simd_path(GetParam());
  EXPECT_EQ(t.path(), GetParam());
  t.forward(simd.data());
  EXPECT_EQ(portable, simd);
  set_simd_path(SimdPath::Portable);
  t.inverse(portable.data());
  set_simd_path(GetParam());
  t.inverse(simd.data());
  EXPECT_EQ(portable, simd);
  EXPECT_EQ(simd, in);
}

// Primes above a path's bound, and n < 16, take the portable path.
TEST_P(NttSimdPaths, LargePrimesUseThePortablePath) {
  SimdGuard guard;
  if (!select_path(GetParam())) GTEST_SKIP() << missing(GetParam());
  const size_t n = 1024;
  for (int bits : {50, 51, 55, 60}) {
    const Modulus m(ntt_prime(bits, n));
    const NTTTables t(n, m);
    EXPECT_EQ(t.path(), expected_path(GetParam(), m.value, n)) << bits;
    if (bits > 50) {
      EXPECT_EQ(t.path(), SimdPath::Portable) << bits;
    }
  }
  EXPECT_EQ(NTTTables(8, Modulus(ntt_prime(40, 8))).path(), SimdPath::Portable);  // n < 16
}

INSTANTIATE_TEST_SUITE_P(Ring, NttSimdPaths, ::testing::ValuesIn(kSimdPaths),
                         [](const auto& info) { return path_name(info.param); });

TEST(Ntt, CopiedTablesStayValid) {
  SimdGuard guard;
  std::mt19937_64 rng(16);
  const size_t n = 2048;
  const Modulus m(ntt_prime(49, n));
  auto original = std::make_unique<NTTTables>(n, m);
  const NTTTables copy = *original;
  std::vector<uint64_t> a = random_vector(n, m.value, rng), b = a;
  original->forward(b.data());
  original.reset();
  copy.forward(a.data());
  EXPECT_EQ(a, b);
}

TEST(Ntt, TablesAreDeterministicAndConsistent) {
  const size_t n = 256;
  const Modulus m(ntt_prime(50, n));
  const NTTTables t1(n, m), t2(n, m);
  EXPECT_EQ(t1.root(), t2.root());
  EXPECT_EQ(t1.root_powers(), t2.root_powers());
  EXPECT_EQ(t1.n(), n);
  EXPECT_EQ(t1.log_n(), 8);
  EXPECT_EQ(pow_mod(t1.root(), n, m), m.value - 1);  // primitive 2n-th root
  EXPECT_EQ(mul_mod(t1.inv_n(), n, m), 1u);
  for (size_t k = 0; k < n; ++k) {
    EXPECT_EQ(mul_mod(t1.root_powers()[k], t1.inv_root_powers()[k], m), 1u);
    EXPECT_EQ(t1.root_powers_shoup()[k], shoup_precompute(t1.root_powers()[k], m.value));
  }
}

TEST(Ntt, RejectsBadParameters) {
  const Modulus q(12289);  // 12289 = 3 · 2^12 + 1
  EXPECT_NO_THROW(NTTTables(2048, q));
  EXPECT_THROW(NTTTables(4096, q), std::invalid_argument);  // needs q ≡ 1 mod 8192
  EXPECT_THROW(NTTTables(4, q), std::invalid_argument);
  EXPECT_THROW(NTTTables(1000, q), std::invalid_argument);
  EXPECT_THROW(NTTTables(size_t{1} << 18, Modulus(ntt_prime(50, size_t{1} << 18))),
               std::invalid_argument);
  EXPECT_THROW(NTTTables(16, Modulus(1000003)), std::invalid_argument);
}

TEST(Ntt, BitReverse) {
  EXPECT_EQ(bit_reverse(0, 3), 0u);
  EXPECT_EQ(bit_reverse(1, 3), 4u);
  EXPECT_EQ(bit_reverse(6, 3), 3u);
  EXPECT_EQ(bit_reverse(1, 17), 1u << 16);
  for (uint32_t x = 0; x < 1024; ++x) EXPECT_EQ(bit_reverse(bit_reverse(x, 10), 10), x);
}

}  // namespace
}  // namespace heinfer::ring::test
