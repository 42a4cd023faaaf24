#include "ckks/slot_mask.h"

#include <sodium.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <stdexcept>

#include "ckks/scalar_encoding.h"

namespace heinfer::ckks {

namespace {

/// One draw (see the header), without the range guarantee.
SlotMask draw_once(const CKKSContext& ctx, const SpecialFFT& fft, std::size_t level, double min_bits, double max_bits,
                   bool random_sign) {
  const std::size_t n = ctx.n(), half = n / 2;
  // Targets t_j = ±2^u_j, u_j uniform (53 random bits each), from the CSPRNG.
  std::vector<uint64_t> bits(half);
  randombytes_buf(bits.data(), bits.size() * sizeof(uint64_t));
  std::vector<std::complex<double>> slots(half);
  for (std::size_t j = 0; j < half; ++j) {
    const double u = static_cast<double>(bits[j] >> 11) * 0x1.0p-53;
    const double mag = std::exp2(min_bits + u * (max_bits - min_bits));
    const bool negative = random_sign && (bits[j] & 1U);
    slots[j] = {negative ? -mag : mag, 0.0};
  }
  fft.inverse(slots.data());
  // Coefficients p_k = Re u_k, p_{k+N/2} = Im u_k (special_fft.h); rounded, then made
  // self-adjoint so that P(ζ^(5^j)) is real: p_{N-k} = -p_k, p_{N/2} = 0.
  std::vector<double> p(n);
  for (std::size_t k = 0; k < half; ++k) {
    p[k] = std::nearbyint(slots[k].real());
    p[k + half] = std::nearbyint(slots[k].imag());
  }
  p[half] = 0;
  for (std::size_t k = 1; k < half; ++k) p[n - k] = -p[k];
  SlotMask m;
  m.poly.resize(n, level);
  m.poly.set_scale(1.0);
  std::vector<std::int64_t> ip(n);  // |p_k| < 2^(max_bits) · 2 / sqrt(N) + 1: small
  for (std::size_t k = 0; k < n; ++k) ip[k] = static_cast<std::int64_t>(p[k]);
  for (std::size_t i = 0; i <= level; ++i) {
    uint64_t* dst = m.poly.limb(i);
    for (std::size_t k = 0; k < n; ++k) dst[k] = int_to_residue(ip[k], ctx.modulus(i));
    ctx.ntt(i).forward(dst);
  }
  for (std::size_t k = 0; k < half; ++k) slots[k] = {p[k], p[k + half]};
  fft.forward(slots.data());
  m.factors.resize(half);
  for (std::size_t j = 0; j < half; ++j) m.factors[j] = slots[j].real();
  return m;
}

}  // namespace

SlotMask draw_slot_mask(const CKKSContext& ctx, const SpecialFFT& fft, std::size_t level, double min_bits,
                        double max_bits, bool random_sign) {
  if (!(min_bits >= 1 && min_bits < max_bits && max_bits <= 40)) {
    throw std::invalid_argument("draw_slot_mask: mask bits must satisfy 1 <= min < max <= 40");
  }
  if (level > ctx.max_level()) throw std::invalid_argument("draw_slot_mask: level above the top level");
  if (fft.slots() != ctx.n() / 2) throw std::invalid_argument("draw_slot_mask: FFT of another ring degree");
  // The rounding moves a factor by N(0, N/12): redraw in the rare case a factor leaves
  // [2^min / 4, 2^max · kSlotMaskSlack], so the range is a guarantee.
  const double lo = std::exp2(min_bits - 2), hi = std::exp2(max_bits) * kSlotMaskSlack;
  for (int attempt = 0; attempt < 16; ++attempt) {
    SlotMask m = draw_once(ctx, fft, level, min_bits, max_bits, random_sign);
    bool inside = true;
    for (double f : m.factors) inside = inside && std::fabs(f) >= lo && std::fabs(f) <= hi && (random_sign || f > 0);
    if (inside) return m;
  }
  throw std::runtime_error("draw_slot_mask: 16 draws outside the range (min_bits too small for this ring degree)");
}

}  // namespace heinfer::ckks
