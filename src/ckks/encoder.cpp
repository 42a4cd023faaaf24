#include "ckks/encoder.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "ckks/scalar_encoding.h"
#include "ring/multiprecision.h"
#include "ring/parallel.h"

namespace heinfer::ckks {

namespace {

void check_shape(const CKKSContext& ctx, size_t count, size_t max_count, double scale,
                 size_t level) {
  if (count > max_count) {
    throw std::invalid_argument("CKKSEncoder: " + std::to_string(count) +
                                " values exceed the capacity of " + std::to_string(max_count));
  }
  if (level > ctx.max_level()) {
    throw std::invalid_argument("CKKSEncoder: level " + std::to_string(level) +
                                " exceeds the top level " + std::to_string(ctx.max_level()));
  }
  if (!std::isfinite(scale) || scale <= 0) {
    throw std::invalid_argument("CKKSEncoder: scale must be finite and positive");
  }
}

}  // namespace

CKKSEncoder::CKKSEncoder(ContextPtr context) : context_(std::move(context)), fft_(context_->n()) {}

void CKKSEncoder::encode(std::span<const double> values, double scale, size_t level,
                         Plaintext& out) const {
  check_shape(*context_, values.size(), slot_count(), scale, level);
  std::vector<std::complex<double>> slots(slot_count());
  for (size_t j = 0; j < values.size(); ++j) slots[j] = {values[j], 0.0};
  encode_slots(slots, scale, level, out);
}

void CKKSEncoder::encode(std::span<const std::complex<double>> values, double scale,
                         size_t level, Plaintext& out) const {
  check_shape(*context_, values.size(), slot_count(), scale, level);
  std::vector<std::complex<double>> slots(slot_count());
  std::copy(values.begin(), values.end(), slots.begin());
  encode_slots(slots, scale, level, out);
}

void CKKSEncoder::encode_packed(std::span<const double> values, double scale, size_t level,
                                Plaintext& out) const {
  const size_t half = slot_count();
  check_shape(*context_, values.size(), 2 * half, scale, level);
  std::vector<std::complex<double>> slots(half);
  for (size_t j = 0; j < half; ++j) {
    const double re = j < values.size() ? values[j] : 0.0;
    const double im = j + half < values.size() ? values[j + half] : 0.0;
    slots[j] = {re, im};
  }
  encode_slots(slots, scale, level, out);
}

void CKKSEncoder::encode_scalar(double value, double scale, size_t level, Plaintext& out) const {
  check_shape(*context_, 0, 0, scale, level);
  const size_t n = context_->n();
  std::vector<uint64_t> residues(level + 1);
  heinfer::ckks::encode_scalar(*context_, value, scale, level, residues.data());
  out.resize(n, level);
  out.set_scale(scale);
  for (size_t i = 0; i <= level; ++i) std::fill(out.limb(i), out.limb(i) + n, residues[i]);
}

void CKKSEncoder::encode_slots(std::vector<std::complex<double>>& slots, double scale,
                               size_t level, Plaintext& out) const {
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), half = n / 2;
  for (const auto& z : slots) {
    if (!std::isfinite(z.real()) || !std::isfinite(z.imag())) {
      throw std::invalid_argument("CKKSEncoder: non-finite input value");
    }
  }
  fft_.inverse(slots.data());
  std::vector<double> coeffs(n);
  double max_abs = 0;
  for (size_t k = 0; k < half; ++k) {
    coeffs[k] = std::nearbyint(slots[k].real() * scale);
    coeffs[k + half] = std::nearbyint(slots[k].imag() * scale);
    max_abs = std::max({max_abs, std::fabs(coeffs[k]), std::fabs(coeffs[k + half])});
  }
  const double log2_q = ctx.level_data(level).log2_q;
  if (!std::isfinite(max_abs) || (max_abs > 0 && std::log2(max_abs) >= log2_q - 1)) {
    std::ostringstream m;
    m << "CKKSEncoder: scaled coefficient of magnitude 2^" << std::log2(max_abs)
      << " >= Q/2 = 2^" << log2_q - 1 << " at level " << level
      << " (values too large for this scale and level)";
    throw std::invalid_argument(m.str());
  }
  out.resize(n, level);
  out.set_scale(scale);
  // Coefficients below 2^62 (all but huge scales) convert once to integers.
  const bool small = max_abs < 0x1p62;
  std::vector<std::int64_t> ic(small ? n : 0);
  for (size_t k = 0; k < ic.size(); ++k) ic[k] = static_cast<std::int64_t>(coeffs[k]);
#pragma omp parallel for if (ring::detail::use_parallel(level + 1, n * 16))
  for (size_t i = 0; i <= level; ++i) {
    const ring::Modulus& q = ctx.modulus(i);
    uint64_t* dst = out.limb(i);
    if (small) {
      for (size_t k = 0; k < n; ++k) dst[k] = int_to_residue(ic[k], q);
    } else {
      for (size_t k = 0; k < n; ++k) dst[k] = double_to_residue(coeffs[k], q);
    }
    ctx.ntt(i).forward(dst);
  }
}

void CKKSEncoder::decode_coefficients(const Plaintext& plain, std::vector<double>& out) const {
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), level = plain.level();
  if (plain.n() != n || level > ctx.max_level() || plain.data().size() != n * (level + 1)) {
    throw std::invalid_argument("CKKSEncoder: plaintext does not match the context");
  }
  ring::LimbVector coeff(plain.data());
#pragma omp parallel for if (ring::detail::use_parallel(level + 1, n * 16))
  for (size_t i = 0; i <= level; ++i) ctx.ntt(i).inverse(coeff.data() + i * n);

  out.resize(n);
  const double inv_scale = 1.0 / plain.scale();
  if (level == 0) {
    const uint64_t q = ctx.modulus(0).value;
    for (size_t k = 0; k < n; ++k) {
      const uint64_t v = coeff[k];
      out[k] = (v > q / 2 ? -static_cast<double>(q - v) : static_cast<double>(v)) * inv_scale;
    }
    return;
  }
  // Exact CRT: x = Σ_i y_i · Q/q_i mod Q with y_i = [x_i (Q/q_i)^-1]_{q_i}, then centered.
  // Fast path: v = round(Σ_i y_i / q_i) in doubles is certain unless the sum lies within its
  // rounding error of a half-integer; then c = Σ_i y_i·Q/q_i - v·Q is computed modulo 2^128
  // and read as a signed 128-bit integer. c is the centered x if c ≡ x_i (mod q_i) for the
  // first primes whose product P exceeds Q/2^127 (c - x = k·2^128 with |k| < P/2 and
  // P | k force k = 0). Otherwise (values near ±Q/2, or large ones) the multiprecision sum
  // decides.
  const LevelData& ld = ctx.level_data(level);
  const size_t words = ld.crt_words;
  const size_t limbs = level + 1;
  using ring::u128;
  __extension__ typedef __int128 i128;
  std::vector<double> inv_q(limbs);
  std::vector<u128> punctured_low(limbs);
  for (size_t i = 0; i < limbs; ++i) {
    inv_q[i] = 1.0 / static_cast<double>(ctx.modulus(i).value);
    punctured_low[i] = static_cast<u128>(ld.punctured[i * words]) |
                       (words > 1 ? static_cast<u128>(ld.punctured[i * words + 1]) << 64 : 0);
  }
  const u128 q_low = static_cast<u128>(ld.q_product[0]) |
                     (words > 1 ? static_cast<u128>(ld.q_product[1]) << 64 : 0);
  // Bound on |f - Σ y_i/q_i|: three roundings per term (y_i, 1/q_i, the product), one per
  // partial sum (< limbs).
  const double error = 4.0 * static_cast<double>(limbs * (limbs + 1)) * 0x1p-53;
  size_t checks = 0;  // primes to check the 128-bit candidate against
  for (double bits = 0, need = ring::mp::log2(ld.q_product.data(), words) - 126.0; bits < need;) {
    if (checks == limbs) break;
    bits += std::log2(static_cast<double>(ctx.modulus(checks++).value)) - 1.0;
  }
  const bool fast = checks < limbs;
#pragma omp parallel if (ring::detail::use_parallel(n, limbs * (limbs + 1)))
  {
    std::vector<uint64_t> acc(words), mag(words), y(limbs);
#pragma omp for
    for (size_t k = 0; k < n; ++k) {
      double f = 0.0;
      for (size_t i = 0; i < limbs; ++i) {
        y[i] = ring::mul_mod_shoup(coeff[i * n + k], ld.inv_punctured[i], ld.inv_punctured_shoup[i],
                                   ctx.modulus(i).value);
        f += static_cast<double>(y[i]) * inv_q[i];
      }
      const double v = std::nearbyint(f);
      const double frac = std::fabs(f - v);
      double value = 0.0;
      bool exact = false;
      if (fast && frac + error < 0.5) {
        u128 x = -static_cast<u128>(static_cast<uint64_t>(v)) * q_low;
        for (size_t i = 0; i < limbs; ++i) x += static_cast<u128>(y[i]) * punctured_low[i];
        const auto c = static_cast<i128>(x);
        const u128 magnitude = c < 0 ? -x : x;
        exact = true;
        for (size_t i = 0; i < checks && exact; ++i) {
          const ring::Modulus& q = ctx.modulus(i);
          uint64_t r = ring::reduce_128(magnitude, q);
          if (c < 0 && r != 0) r = q.value - r;
          exact = r == coeff[i * n + k];
        }
        value = static_cast<double>(c);
      }
      if (!exact) {
        std::fill(acc.begin(), acc.end(), 0);
        for (size_t i = 0; i < limbs; ++i) {
          ring::mp::multiply_add_word(acc.data(), ld.punctured.data() + i * words, y[i], words);
        }
        while (ring::mp::compare(acc.data(), ld.q_product.data(), words) >= 0) {
          ring::mp::sub(acc.data(), ld.q_product.data(), words);
        }
        if (ring::mp::compare(acc.data(), ld.half_q.data(), words) > 0) {
          ring::mp::sub(ld.q_product.data(), acc.data(), mag.data(), words);
          value = -ring::mp::to_double(mag.data(), words);
        } else {
          value = ring::mp::to_double(acc.data(), words);
        }
      }
      out[k] = value * inv_scale;
    }
  }
}

void CKKSEncoder::decode_slots(const Plaintext& plain,
                               std::vector<std::complex<double>>& slots) const {
  std::vector<double> coeffs;
  decode_coefficients(plain, coeffs);
  const size_t half = slot_count();
  slots.resize(half);
  for (size_t k = 0; k < half; ++k) slots[k] = {coeffs[k], coeffs[k + half]};
  fft_.forward(slots.data());
}

void CKKSEncoder::decode(const Plaintext& plain, std::vector<double>& out) const {
  std::vector<std::complex<double>> slots;
  decode_slots(plain, slots);
  out.resize(slots.size());
  for (size_t j = 0; j < slots.size(); ++j) out[j] = slots[j].real();
}

void CKKSEncoder::decode(const Plaintext& plain, std::vector<std::complex<double>>& out) const {
  decode_slots(plain, out);
}

void CKKSEncoder::decode_packed(const Plaintext& plain, std::vector<double>& out) const {
  std::vector<std::complex<double>> slots;
  decode_slots(plain, slots);
  const size_t half = slots.size();
  out.resize(2 * half);
  for (size_t j = 0; j < half; ++j) {
    out[j] = slots[j].real();
    out[j + half] = slots[j].imag();
  }
}

}  // namespace heinfer::ckks
