// Samplers: distributions, bounds, determinism of seeded streams.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "ring/random.h"

namespace heinfer::ring::test {

TEST(Random, SeedsDiffer) { EXPECT_NE(random_seed(), random_seed()); }

TEST(Random, StreamsAreDeterministicAndSeparated) {
  const Seed s = random_seed();
  Prng a(s, StreamPurpose::CiphertextMask, 0, 1), b(s, StreamPurpose::CiphertextMask, 0, 1);
  Prng c(s, StreamPurpose::CiphertextMask, 0, 2), d(s, StreamPurpose::PublicKeyMask, 0, 1);
  std::vector<uint8_t> va(10000), vb(10000), vc(10000), vd(10000);
  a.fill(va.data(), 3);  // odd chunking must not change the stream
  a.fill(va.data() + 3, va.size() - 3);
  b.fill(vb.data(), vb.size());
  c.fill(vc.data(), vc.size());
  d.fill(vd.data(), vd.size());
  EXPECT_EQ(va, vb);
  EXPECT_NE(va, vc);
  EXPECT_NE(va, vd);
}

TEST(Random, TernaryIsUniform) {
  Prng prng(random_seed(), StreamPurpose::Secret);
  const size_t n = 300000;
  std::vector<int8_t> v(n);
  sample_ternary(prng, v.data(), n);
  std::map<int, size_t> count;
  for (int8_t x : v) count[x]++;
  ASSERT_EQ(count.size(), 3u);
  // Each count ~ Binomial(n, 1/3): sd ≈ 258; allow 6 sd.
  for (int x : {-1, 0, 1}) EXPECT_NEAR(static_cast<double>(count[x]), n / 3.0, 1550.0) << x;
}

TEST(Random, GaussianMomentsAndTailCut) {
  Prng prng(random_seed(), StreamPurpose::Error);
  const size_t n = 400000;
  std::vector<int8_t> v(n);
  sample_gaussian(prng, v.data(), n);
  double sum = 0, sq = 0;
  int lo = 0, hi = 0;
  for (int8_t x : v) {
    sum += x;
    sq += static_cast<double>(x) * x;
    lo = std::min<int>(lo, x);
    hi = std::max<int>(hi, x);
  }
  const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.03);           // sd of the mean ≈ 0.005
  EXPECT_NEAR(sd, kErrorSigma, 0.03);     // relative sd of sd ≈ 0.1 %
  EXPECT_GE(lo, -kErrorBound);
  EXPECT_LE(hi, kErrorBound);
  EXPECT_LE(lo, -12);  // P(|x| >= 12) ≈ 2e-4 per sample: seen with certainty here
  EXPECT_GE(hi, 12);
}

TEST(Random, UniformBelowModulusAndUnbiased) {
  const Modulus q((uint64_t{1} << 43) - 57);  // any modulus works for sampling
  Prng prng(random_seed(), StreamPurpose::CiphertextMask);
  const size_t n = 200000;
  std::vector<uint64_t> v(n);
  sample_uniform(prng, q, v.data(), n);
  double mean = 0;
  for (uint64_t x : v) {
    ASSERT_LT(x, q.value);
    mean += static_cast<double>(x) / static_cast<double>(q.value);
  }
  mean /= n;
  EXPECT_NEAR(mean, 0.5, 0.005);  // sd ≈ 0.00065
}

TEST(Random, SmallToLimb) {
  const Modulus q(97);
  const int8_t x[] = {-3, 0, 5, -1};
  uint64_t out[4];
  small_to_limb(x, 4, q, out);
  EXPECT_EQ(out[0], 94u);
  EXPECT_EQ(out[1], 0u);
  EXPECT_EQ(out[2], 5u);
  EXPECT_EQ(out[3], 96u);
}

}  // namespace heinfer::ring::test
