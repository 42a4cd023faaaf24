// Per-slot masks: exact real factors, no level, the drawn distribution.
#include <gtest/gtest.h>

#include "ckks/slot_mask.h"
#include "test_util.h"

namespace heinfer::ckks::test {

TEST(SlotMask, MultipliesEverySlotByItsExactFactorWithoutALevel) {
  const Bundle& b = bundle_8192();
  const size_t half = b.ctx->n() / 2, level = 2;
  const SpecialFFT fft(b.ctx->n());
  const auto v = random_reals(half, 1.0, 7);
  const Ciphertext c = b.encrypt_real(v, std::ldexp(1.0, 30), level);
  const SlotMask m = draw_slot_mask(*b.ctx, fft, level, 9, 15, true);
  ASSERT_EQ(m.factors.size(), half);
  Ciphertext masked;
  b.eval->multiply_plain(c, m.poly, masked);
  EXPECT_EQ(masked.level(), level);
  EXPECT_DOUBLE_EQ(masked.scale(), c.scale());
  const auto d = b.decrypt_real(masked);
  const auto plain = b.decrypt_real(c);
  double worst = 0, base = 0;
  std::size_t negative = 0;
  for (size_t j = 0; j < half; ++j) {
    worst = std::max(worst, std::fabs(d[j] / m.factors[j] - v[j]));
    base = std::max(base, std::fabs(plain[j] - v[j]));
    EXPECT_GE(std::fabs(m.factors[j]), 512 - 7 * std::sqrt(8192 / 12.0));
    EXPECT_LT(std::fabs(m.factors[j]), 32768 + 7 * std::sqrt(8192 / 12.0));
    negative += m.factors[j] < 0;
  }
  // The factor is exact: dividing it out leaves the encryption error of c, no more.
  EXPECT_LT(worst, base + 1e-9);
  // Signs are fair coins: 4096 draws land within 5σ of half.
  EXPECT_NEAR(static_cast<double>(negative), half / 2.0, 5 * std::sqrt(half / 4.0));
}

TEST(SlotMask, PositiveMasksAndLogUniformMagnitudes) {
  const Bundle& b = bundle_8192();
  const SpecialFFT fft(b.ctx->n());
  const SlotMask m = draw_slot_mask(*b.ctx, fft, 0, 9, 15, false);
  std::vector<int> bins(6, 0);
  for (double f : m.factors) {
    ASSERT_GT(f, 0);
    const int bin = std::clamp(static_cast<int>(std::floor(std::log2(f))) - 9, 0, 5);
    ++bins[static_cast<std::size_t>(bin)];
  }
  // log2 μ is uniform over [9, 15): each unit bin holds about 1/6 of the slots.
  for (int c : bins) EXPECT_NEAR(c, 4096 / 6.0, 150);
  // Two draws differ.
  const SlotMask m2 = draw_slot_mask(*b.ctx, fft, 0, 9, 15, false);
  EXPECT_NE(m.factors, m2.factors);
}

TEST(SlotMask, BadArgumentsThrow) {
  const Bundle& b = bundle_8192();
  const SpecialFFT fft(b.ctx->n()), other(1024);
  EXPECT_THROW(draw_slot_mask(*b.ctx, fft, 0, 9, 9, true), std::invalid_argument);
  EXPECT_THROW(draw_slot_mask(*b.ctx, fft, 0, 0.5, 9, true), std::invalid_argument);
  EXPECT_THROW(draw_slot_mask(*b.ctx, fft, b.ctx->max_level() + 1, 9, 15, true), std::invalid_argument);
  EXPECT_THROW(draw_slot_mask(*b.ctx, other, 0, 9, 15, true), std::invalid_argument);
}

}  // namespace heinfer::ckks::test
