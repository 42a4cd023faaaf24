// The multi-output dot product of ring/multi_dot.h (used by the encrypted backend's linear
// layers) equals the portable dot_scalar_poly per output, on every path (any output count,
// long sums, lengths that fall back, terms of each output's own).
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
// with the extremes ±(small - 1); else uniform in [0, q). own: every even output adds a
// term of its own (multi_dot's `own`, the odd ones pass null), checked as one more input.
void check(std::size_t bits, std::size_t count, std::size_t outputs, std::size_t len, std::uint32_t seed,
           std::uint64_t small = 0, std::uint64_t prime = 0, bool own = false) {
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
  // Own terms: extreme values (q - 1 times q - 1) where the chunk bound is tightest.
  std::vector<std::vector<std::uint64_t>> own_in(outputs, std::vector<std::uint64_t>(len, q.value - 1));
  std::vector<const std::uint64_t*> own_ptr(outputs, nullptr);
  std::vector<std::uint64_t> own_sc(outputs, q.value - 1);
  for (std::size_t m = 0; m < outputs; m += 2) own_ptr[m] = own_in[m].data();
  detail::multi_dot(ptrs.data(), count, sptr.data(), outputs, optr.data(), len, q, own ? own_ptr.data() : nullptr,
                    own ? own_sc.data() : nullptr);
  const SimdPath path = simd_path();
  set_simd_path(SimdPath::Portable);
  for (std::size_t m = 0; m < outputs; ++m) {
    auto terms = ptrs;
    auto scalars = sc[m];
    if (own && own_ptr[m]) {
      terms.push_back(own_ptr[m]);
      scalars.push_back(own_sc[m]);
    }
    dot_scalar_poly(terms.data(), scalars.data(), terms.size(), want[m].data(), len, q);
    EXPECT_EQ(got[m], want[m]) << "bits " << bits << " count " << count << " output " << m << " own " << own;
  }
  set_simd_path(path);
}

class MultiDotPaths : public ::testing::TestWithParam<SimdPath> {};

TEST_P(MultiDotPaths, MatchesPortableDotScalarPolyPerOutput) {
  SimdGuard guard;
  if (!select_path(GetParam())) GTEST_SKIP() << missing(GetParam());
  for (std::size_t outputs : {1u, 2u, 3u, 4u, 5u, 9u}) check(49, 37, outputs, 64, 1 + static_cast<std::uint32_t>(outputs));
  check(49, 4094, 5, 32, 11);  // IFMA: the longest sum without a reduction
  check(49, 4095, 3, 16, 12);  // IFMA: reduced once, then one more term
  check(49, 9000, 3, 16, 27);  // IFMA: three chunks
  // Terms of each output's own (a residual-fused convolution's Add), in one chunk, at the
  // chunk bound, across chunks, and on the paths that add them after the shared sums.
  check(49, 37, 5, 64, 28, 0, 0, true);
  check(49, 4094, 4, 16, 29, 0, 0, true);
  check(49, 8189, 2, 16, 30, 0, 0, true);
  check(30, 845, 6, 64, 31, 0, 0, true);
  check(49, 10, 3, 12, 32, 0, 0, true);
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

// Every product's low 52-bit half near 2^52 (all inputs q - 1, all scalars chosen so):
// the sums the IFMA kernel carries between reductions reach their bound, and a chunk one
// term longer than the bound allows would wrap 2^64.
TEST_P(MultiDotPaths, WorstCaseLowHalvesAtTheChunkBound) {
  SimdGuard guard;
  if (!select_path(GetParam())) GTEST_SKIP() << missing(GetParam());
  const Modulus q(generate_ntt_primes({49}, 2048)[0]);
  const std::uint64_t x = q.value - 1, mask = (std::uint64_t{1} << 52) - 1;
  std::uint64_t s = q.value - 1;
  for (std::uint64_t c = 1; c < q.value; ++c) {  // a scalar with lo52(x·c) >= 2^52 - 2^44
    if ((static_cast<std::uint64_t>(static_cast<u128>(x) * c) & mask) >= mask - (std::uint64_t{1} << 44)) {
      s = c;
      break;
    }
  }
  for (std::size_t count : {4094u, 4095u, 4097u, 8200u}) {
    std::vector<std::uint64_t> in(16, x), sc(count, s), own(16, x), got(16), want(16);
    std::vector<const std::uint64_t*> ptrs(count, in.data()), terms(count + 1, in.data());
    const std::uint64_t* sptr = sc.data();
    std::uint64_t* optr = got.data();
    const std::uint64_t* own_ptr = own.data();
    detail::multi_dot(ptrs.data(), count, &sptr, 1, &optr, 16, q, &own_ptr, &s);
    sc.push_back(s);
    set_simd_path(SimdPath::Portable);
    dot_scalar_poly(terms.data(), sc.data(), count + 1, want.data(), 16, q);
    select_path(GetParam());
    EXPECT_EQ(got, want) << "count " << count;
  }
}

// Primes below 2^31 (exact 64-bit products): every product at its largest, (q - 1)^2, so
// the 64-bit sums reach their bound between splits (4 terms at 31 bits, 16 at 30).
TEST_P(MultiDotPaths, LargestProductsOfNarrowPrimes) {
  SimdGuard guard;
  if (!select_path(GetParam())) GTEST_SKIP() << missing(GetParam());
  for (int bits : {31, 30}) {
    const Modulus q(generate_ntt_primes({bits}, 2048)[0]);
    for (std::size_t count : {3u, 4u, 5u, 17u, 4097u}) {
      std::vector<std::uint64_t> in(32, q.value - 1), sc(count, q.value - 1), own(32, q.value - 1);
      std::vector<std::uint64_t> got(32), want(32);
      std::vector<const std::uint64_t*> ptrs(count, in.data()), terms(count + 1, in.data());
      const std::uint64_t* sptr = sc.data();
      std::uint64_t* optr = got.data();
      const std::uint64_t* own_ptr = own.data();
      const std::uint64_t own_sc = q.value - 1;
      detail::multi_dot(ptrs.data(), count, &sptr, 1, &optr, 32, q, &own_ptr, &own_sc);
      sc.push_back(own_sc);
      set_simd_path(SimdPath::Portable);
      dot_scalar_poly(terms.data(), sc.data(), count + 1, want.data(), 32, q);
      select_path(GetParam());
      EXPECT_EQ(got, want) << "bits " << bits << " count " << count;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ring, MultiDotPaths, ::testing::ValuesIn(kAllPaths),
                         [](const auto& info) { return path_name(info.param); });

}  // namespace
}  // namespace heinfer::ring::test
