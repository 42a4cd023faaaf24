// The multi-output dot product of ring/multi_dot.h (used by the encrypted backend's linear
// layers) equals the portable dot_scalar_poly per output, on every path (any output count,
// long sums, lengths that fall back).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "ring/cpu_features.h"
#include "ring/multi_dot.h"
#include "ring/poly_arith.h"
#include "ring/primes.h"
#include "ring_test_util.h"

namespace heinfer::ring::test {
namespace {

// small > 0: scalars centred below `small` in magnitude (weights times a weight scale),
// with the extremes ±(small - 1); else uniform in [0, q).
void check(std::size_t bits, std::size_t count, std::size_t outputs, std::size_t len, std::uint32_t seed,
           std::uint64_t small = 0, std::uint64_t prime = 0) {
  const Modulus q(prime ? prime : generate_ntt_primes({static_cast<int>(bits)}, 2048)[0]);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::uint64_t> d(0, q.value - 1);
  std::vector<std::vector<std::uint64_t>> in(count, std::vector<std::uint64_t>(len));
  std::vector<std::vector<std::uint64_t>> sc(outputs, std::vector<std::uint64_t>(count));
  for (auto& v : in) for (auto& x : v) x = d(rng);
  for (auto& v : sc) {
    for (auto& x : v) {
      x = d(rng);
      if (small) x = x % small ? (rng() & 1 ? x % small : q.value - x % small) : 0;
    }
  }
  // Extreme values: all q - 1 in the first input and scalar (small: ±(small - 1)).
  for (auto& x : in[0]) x = q.value - 1;
  for (std::size_t m = 0; m < outputs; ++m) {
    sc[m][0] = small ? (m % 2 ? small - 1 : q.value - (small - 1)) : q.value - 1;
  }
  std::vector<const std::uint64_t*> ptrs, sptr;
  for (auto& v : in) ptrs.push_back(v.data());
  for (auto& v : sc) sptr.push_back(v.data());
  std::vector<std::vector<std::uint64_t>> got(outputs, std::vector<std::uint64_t>(len, 7)), want = got;
  std::vector<std::uint64_t*> optr;
  for (auto& v : got) optr.push_back(v.data());
  detail::multi_dot(ptrs.data(), count, sptr.data(), outputs, optr.data(), len, q);
  const SimdPath path = simd_path();
  set_simd_path(SimdPath::Portable);
  for (std::size_t m = 0; m < outputs; ++m) {
    dot_scalar_poly(ptrs.data(), sptr[m], count, want[m].data(), len, q);
    EXPECT_EQ(got[m], want[m]) << "bits " << bits << " count " << count << " output " << m;
  }
  set_simd_path(path);
}

class MultiDotPaths : public ::testing::TestWithParam<SimdPath> {};

TEST_P(MultiDotPaths, MatchesPortableDotScalarPolyPerOutput) {
  SimdGuard guard;
  if (!select_path(GetParam())) GTEST_SKIP() << missing(GetParam());
  for (std::size_t outputs : {1u, 2u, 3u, 4u, 5u, 9u}) check(49, 37, outputs, 64, 1 + static_cast<std::uint32_t>(outputs));
  check(49, 4096, 5, 32, 11);  // the longest IFMA sum
  check(49, 4100, 3, 16, 12);  // falls back
  check(30, 845, 6, 64, 13);   // AVX2: 64-bit integer products, folded every ~16 terms
  check(31, 301, 5, 64, 18);   // AVX2: folded every 4 terms
  check(20, 77, 4, 8, 19);
  check(48, 300, 4, 64, 16);   // AVX2: the sums are reduced every few terms
  check(55, 20, 4, 64, 14);    // q >= 2^50: portable path
  check(49, 10, 4, 24, 15);    // len not a multiple of 16: AVX2 or portable
  check(49, 10, 3, 12, 17);    // AVX2 tail of 4
  check(30, 100, 7, 200, 20);  // several coefficient tiles (the last one partial) and input passes
  check(48, 70, 6, 136, 21);
  // Centred scalars below 2^31 (AVX2: products of 24-bit halves), up to the bound and one past it.
  check(48, 300, 5, 200, 22, std::uint64_t{1} << 31);
  check(49, 845, 6, 64, 23, std::uint64_t{1} << 31);
  check(49, 40, 4, 64, 24, (std::uint64_t{1} << 31) + 1);
  check(40, 3000, 3, 16, 25, std::uint64_t{1} << 20);
  // q = 32776·2^32 + 1: (q - 1)^2 is 0 modulo 2^64 (a per-prime constant of the integer
  // path must not be computed for it).
  check(48, 50, 4, 64, 26, std::uint64_t{1} << 31, 140771848093697ULL);
}

INSTANTIATE_TEST_SUITE_P(Ring, MultiDotPaths, ::testing::ValuesIn(kAllPaths),
                         [](const auto& info) { return path_name(info.param); });

}  // namespace
}  // namespace heinfer::ring::test
