// The RNS glue kernels of ring/rns_kernels.h: every path (portable, AVX2, AVX-512) agrees bit for bit
// and match a direct reference (whole key switches across paths: tests/ckks/simd_paths_test.cpp).
#include <gtest/gtest.h>

#include "ring/cpu_features.h"
#include "ring/primes.h"
#include "ring/rns_kernels.h"
#include "ring_test_util.h"

namespace heinfer::ring::test {

namespace {

int64_t centered(uint64_t v, uint64_t q) {
  return v > q / 2 ? static_cast<int64_t>(v) - static_cast<int64_t>(q) : static_cast<int64_t>(v);
}
uint64_t mod(int64_t v, uint64_t m) {
  const int64_t r = v % static_cast<int64_t>(m);
  return static_cast<uint64_t>(r < 0 ? r + static_cast<int64_t>(m) : r);
}

}  // namespace

TEST(RnsKernels, MatchReferenceOnEveryPath) {
  SimdGuard guard;
  const size_t n = 1000;  // not a multiple of the vector width
  const auto p = generate_ntt_primes({30, 49, 50, 60}, 1024);
  std::mt19937_64 rng(5);
  std::vector<int8_t> e(n);
  for (auto& v : e) v = static_cast<int8_t>(static_cast<int>(rng() % 39) - 19);
  for (SimdPath path : kAllPaths) {
    if (!select_path(path)) continue;
    for (uint64_t from : p) {
      for (uint64_t to : p) {
        const Modulus m(to);
        std::vector<uint64_t> in(n), out(n);
        for (auto& v : in) v = rng() % from;
        const uint64_t s = rng() % to;
        detail::reduce_sub_limb(in.data(), from, s, m, out.data(), n);
        for (size_t x = 0; x < n; ++x) ASSERT_EQ(out[x], sub_mod(in[x] % to, s, to));
        detail::reduce_limb(in.data(), from, m, out.data(), n);
        for (size_t x = 0; x < n; ++x) ASSERT_EQ(out[x], in[x] % to);
        detail::centered_limb(in.data(), from, m, out.data(), n);
        for (size_t x = 0; x < n; ++x) ASSERT_EQ(out[x], mod(centered(in[x], from), to)) << from << " " << to;
      }
      std::vector<uint64_t> x(n), y(n);
      for (auto& v : x) v = rng() % from;
      const uint64_t s = rng() % from;
      y = x;
      detail::add_small(y.data(), e.data(), s, from, n);
      for (size_t c = 0; c < n; ++c) ASSERT_EQ(y[c], mod(static_cast<int64_t>((x[c] + s) % from) + e[c], from));
      y = x;
      detail::sub_small(y.data(), e.data(), s, from, n);
      for (size_t c = 0; c < n; ++c) {
        ASSERT_EQ(y[c], mod(static_cast<int64_t>(sub_mod(x[c], s, from)) - e[c], from));
      }
      y = x;
      detail::add_small(y.data(), nullptr, s, from, n);
      for (size_t c = 0; c < n; ++c) ASSERT_EQ(y[c], add_mod(x[c], s, from));
    }
  }
}

}  // namespace heinfer::ring::test
