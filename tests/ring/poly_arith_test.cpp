// Per-limb kernels against a naive 128-bit reference, on every code path.
#include "ring/poly_arith.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "ring_test_util.h"

namespace heinfer::ring::test {
namespace {

/// Moduli around every boundary: tiny, mid-size, the largest primes below 2^49 (last AVX2
/// size) and 2^50 (last IFMA size) and above them, near 2^60, and the largest allowed
/// (2^61 - 1).
std::vector<uint64_t> test_moduli() {
  std::vector<uint64_t> qs = {3, 12289};
  for (int bits : {30, 48, 49, 50, 51, 55, 60}) qs.push_back(generate_ntt_primes({bits}, 2)[0]);
  qs.push_back((uint64_t{1} << 61) - 1);
  return qs;
}

const std::vector<size_t> kLengths = {1, 7, 8, 9, 31, 32, 33, 64, 100, 1027};

class PolyArithPaths : public ::testing::TestWithParam<SimdPath> {
 protected:
  void SetUp() override {
    if (!select_path(GetParam())) GTEST_SKIP() << missing(GetParam());
  }
  SimdGuard guard_;
};

// Runs check(q, n, a, b) over all moduli and lengths with random + edge data.
template <class Check>
void for_all_inputs(uint64_t seed, Check&& check) {
  std::mt19937_64 rng(seed);
  for (uint64_t qv : test_moduli()) {
    const Modulus q(qv);
    for (size_t n : kLengths) {
      SCOPED_TRACE("q=" + std::to_string(qv) + " n=" + std::to_string(n));
      const std::vector<uint64_t> a = random_with_edges(n, qv, rng);
      std::vector<uint64_t> b = random_vector(n, qv, rng);
      for (size_t i = 2; i < n; i += 5) b[i] = qv - 1;  // (q-1)·(q-1) and (q-1)+(q-1)
      for (size_t i = 4; i < n; i += 9) b[i] = 0;
      check(q, n, a, b);
    }
  }
}

TEST_P(PolyArithPaths, AddSubNegate) {
  for_all_inputs(21, [](const Modulus& q, size_t n, const std::vector<uint64_t>& a,
                        const std::vector<uint64_t>& b) {
    const uint64_t qv = q.value;
    std::vector<uint64_t> sum(n), diff(n), neg(n);
    add_poly(a.data(), b.data(), sum.data(), n, q);
    sub_poly(a.data(), b.data(), diff.data(), n, q);
    negate_poly(a.data(), neg.data(), n, q);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(sum[i], static_cast<uint64_t>((u128{a[i]} + b[i]) % qv)) << i;
      ASSERT_EQ(diff[i], static_cast<uint64_t>((u128{a[i]} + qv - b[i]) % qv)) << i;
      ASSERT_EQ(neg[i], (qv - a[i]) % qv) << i;
    }
    // In place (out aliases an input).
    std::vector<uint64_t> x = a;
    add_poly(x.data(), b.data(), x.data(), n, q);
    ASSERT_EQ(x, sum);
    x = b;
    sub_poly(a.data(), x.data(), x.data(), n, q);
    ASSERT_EQ(x, diff);
    x = a;
    negate_poly(x.data(), x.data(), n, q);
    ASSERT_EQ(x, neg);
  });
}

TEST_P(PolyArithPaths, MultiplyAndMultiplyAdd) {
  for_all_inputs(22, [](const Modulus& q, size_t n, const std::vector<uint64_t>& a,
                        const std::vector<uint64_t>& b) {
    const uint64_t qv = q.value;
    std::vector<uint64_t> prod(n);
    multiply_poly(a.data(), b.data(), prod.data(), n, q);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(prod[i], ref_mul(a[i], b[i], qv)) << i;

    std::vector<uint64_t> acc = b;
    std::reverse(acc.begin(), acc.end());
    const std::vector<uint64_t> acc0 = acc;
    multiply_add_poly(a.data(), b.data(), acc.data(), n, q);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(acc[i], static_cast<uint64_t>((u128{acc0[i]} + ref_mul(a[i], b[i], qv)) % qv)) << i;
    }
    std::vector<uint64_t> x = a;
    multiply_poly(x.data(), x.data(), x.data(), n, q);  // squaring in place
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(x[i], ref_mul(a[i], a[i], qv)) << i;
  });
}

TEST_P(PolyArithPaths, ScalarKernels) {
  for_all_inputs(23, [](const Modulus& q, size_t n, const std::vector<uint64_t>& a,
                        const std::vector<uint64_t>&) {
    const uint64_t qv = q.value;
    for (uint64_t s : {uint64_t{0}, uint64_t{1}, qv - 1, qv / 2, (qv * 7) / 9}) {
      std::vector<uint64_t> prod(n), sum(n);
      multiply_scalar_poly(a.data(), s, prod.data(), n, q);
      add_scalar_poly(a.data(), s, sum.data(), n, q);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_EQ(prod[i], ref_mul(a[i], s, qv)) << i << " s=" << s;
        ASSERT_EQ(sum[i], static_cast<uint64_t>((u128{a[i]} + s) % qv)) << i << " s=" << s;
      }
      std::vector<uint64_t> x = a;
      multiply_scalar_poly(x.data(), s, x.data(), n, q);
      ASSERT_EQ(x, prod);
    }
  });
}

/// Reference dot product, reduced after every term.
std::vector<uint64_t> ref_dot(const std::vector<const uint64_t*>& in,
                              const std::vector<uint64_t>& s, size_t n, uint64_t q) {
  std::vector<uint64_t> out(n, 0);
  for (size_t k = 0; k < in.size(); ++k) {
    for (size_t i = 0; i < n; ++i) {
      out[i] = static_cast<uint64_t>((u128{out[i]} + ref_mul(in[k][i], s[k], q)) % q);
    }
  }
  return out;
}

/// Pairs (x, s), x, s < q, with x·s ≡ -1 (mod 2^52): every product then adds 2^52 - 1 to
/// the low accumulator of the IFMA kernel, the worst case for its overflow bound.
std::pair<uint64_t, uint64_t> low_half_maximal_pair(uint64_t q, std::mt19937_64& rng) {
  const uint64_t mask = (uint64_t{1} << 52) - 1;
  for (int tries = 0; tries < 1000; ++tries) {
    const uint64_t s = (rng() % q) | 1;
    if (s >= q) continue;
    uint64_t inv = s;  // Newton iteration for s^-1 mod 2^64 (s odd)
    for (int i = 0; i < 6; ++i) inv *= 2 - s * inv;
    const uint64_t x = (0 - inv) & mask;  // x·s ≡ -1 (mod 2^52)
    if (x < q) return {x, s};
  }
  return {q - 1, q - 1};
}

TEST_P(PolyArithPaths, DotScalarPoly) {
  std::mt19937_64 rng(24);
  // 4096 products fill the IFMA accumulators; 4097, 5000 and 8193 cross one or two folds.
  const std::vector<size_t> counts = {0, 1, 2, 5, 64, 4095, 4096, 4097, 5000, 8193};
  for (uint64_t qv : test_moduli()) {
    const Modulus q(qv);
    for (size_t n : {size_t{1}, size_t{8}, size_t{67}, size_t{130}}) {
      // A pool of distinct inputs, referenced cyclically; pool[0] is all q - 1.
      std::vector<std::vector<uint64_t>> pool(7);
      pool[0].assign(n, qv - 1);
      for (size_t p = 1; p < pool.size(); ++p) pool[p] = random_with_edges(n, qv, rng);
      // Inputs whose every coefficient x_i pairs with scalar s: x_i · s ≡ -1 (mod 2^52).
      std::vector<std::vector<uint64_t>> lo_max_inputs(3);
      std::vector<uint64_t> lo_max_scalars(3);
      for (size_t p = 0; p < 3; ++p) {
        const auto [x, sc] = low_half_maximal_pair(qv, rng);
        lo_max_inputs[p].assign(n, x);
        lo_max_scalars[p] = sc;
      }
      for (size_t count : counts) {
        if (count > 64 && (n == 8 || n == 130)) continue;  // keep the reference cheap
        SCOPED_TRACE("q=" + std::to_string(qv) + " n=" + std::to_string(n) +
                     " count=" + std::to_string(count));
        for (int worst = 0; worst < 3; ++worst) {
          // worst = 1: every product is (q-1)^2, the largest possible; worst = 2: every
          // product has the largest low 52-bit half.
          std::vector<const uint64_t*> in(count);
          std::vector<uint64_t> s(count);
          for (size_t k = 0; k < count; ++k) {
            in[k] = worst == 1 ? pool[0].data() : pool[k % pool.size()].data();
            s[k] = worst == 1 || k % 3 == 0 ? qv - 1 : rng() % qv;
          }
          if (worst == 2) {
            for (size_t k = 0; k < count; ++k) {
              in[k] = lo_max_inputs[k % lo_max_inputs.size()].data();
              s[k] = lo_max_scalars[k % lo_max_scalars.size()];
            }
          }
          std::vector<uint64_t> out(n, 12345);
          dot_scalar_poly(in.data(), s.data(), count, out.data(), n, q);
          ASSERT_EQ(out, ref_dot(in, s, n, qv)) << "worst=" << worst;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ring, PolyArithPaths, ::testing::ValuesIn(kAllPaths),
                         [](const auto& info) { return path_name(info.param); });

// A SIMD path and the portable one on the same large random data, bit for bit
// (n = 4096 + 5: full blocks + tail).
class PolyArithSimdPaths : public ::testing::TestWithParam<SimdPath> {};

TEST_P(PolyArithSimdPaths, BitIdenticalToPortable) {
  SimdGuard guard;
  if (!select_path(GetParam())) GTEST_SKIP() << missing(GetParam());
  std::mt19937_64 rng(25);
  const size_t n = 4101;
  for (int bits : {36, 48, 49, 50}) {
    const Modulus q(generate_ntt_primes({bits}, 2)[0]);
    const uint64_t qv = q.value;
    const auto a = random_with_edges(n, qv, rng), b = random_vector(n, qv, rng);
    std::vector<std::vector<uint64_t>> ins(40);
    std::vector<const uint64_t*> ptrs;
    std::vector<uint64_t> scalars;
    for (auto& v : ins) {
      v = random_vector(n, qv, rng);
      ptrs.push_back(v.data());
      scalars.push_back(rng() % qv);
    }
    std::vector<uint64_t> r[2][6];
    for (int path = 0; path < 2; ++path) {
      set_simd_path(path == 1 ? GetParam() : SimdPath::Portable);
      for (auto& v : r[path]) v.assign(n, 0);
      add_poly(a.data(), b.data(), r[path][0].data(), n, q);
      sub_poly(a.data(), b.data(), r[path][1].data(), n, q);
      multiply_poly(a.data(), b.data(), r[path][2].data(), n, q);
      r[path][3] = b;
      multiply_add_poly(a.data(), b.data(), r[path][3].data(), n, q);
      multiply_scalar_poly(a.data(), scalars[0], r[path][4].data(), n, q);
      dot_scalar_poly(ptrs.data(), scalars.data(), ptrs.size(), r[path][5].data(), n, q);
    }
    for (int k = 0; k < 6; ++k) EXPECT_EQ(r[0][k], r[1][k]) << "bits=" << bits << " kernel " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Ring, PolyArithSimdPaths, ::testing::ValuesIn(kSimdPaths),
                         [](const auto& info) { return path_name(info.param); });

}  // namespace
}  // namespace heinfer::ring::test
