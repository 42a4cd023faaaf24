// Multiprecision helpers (ring/multiprecision.h): products, residues, comparison, borrow,
// conversion to double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "ring/modulus.h"
#include "ring/multiprecision.h"

namespace heinfer::ring::test {

TEST(Multiprecision, ProductModAndDouble) {
  const std::vector<uint64_t> f = {(uint64_t{1} << 60) - 93, (uint64_t{1} << 59) - 55, 1000003};
  const auto p = mp::product(f);
  ASSERT_EQ(p.size(), 4u);
  for (uint64_t v : f) EXPECT_EQ(mp::mod_word(p.data(), p.size(), Modulus(v)), 0u);
  EXPECT_NEAR(mp::log2(p.data(), p.size()), std::log2(static_cast<double>(f[0])) +
                                                std::log2(static_cast<double>(f[1])) +
                                                std::log2(1000003.0),
              1e-9);
  std::vector<uint64_t> a = p, b = p;
  b[0] += 1;
  EXPECT_EQ(mp::compare(a.data(), b.data(), 4), -1);
  EXPECT_EQ(mp::sub(a.data(), b.data(), 4), 1u);  // borrow
  const std::vector<uint64_t> two64 = {0, 1};
  EXPECT_EQ(mp::to_double(two64.data(), 2), std::ldexp(1.0, 64));
}

}  // namespace heinfer::ring::test
