#include "ckks/special_fft.h"

#include <cmath>
#include <numbers>
#include <stdexcept>
#include <utility>

#include "ring/ntt.h"

namespace heinfer::ckks {

namespace {
// Plain complex product (std::complex's operator* handles inf/NaN via a libcall).
inline std::complex<double> cmul(std::complex<double> a, std::complex<double> b) {
  return {a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real()};
}
}  // namespace

SpecialFFT::SpecialFFT(size_t n) : n_(n), slots_(n / 2) {
  if (n < 4 || (n & (n - 1)) != 0) throw std::invalid_argument("SpecialFFT: bad ring degree");
  log_slots_ = __builtin_ctzll(slots_);
  const size_t m = 2 * n_;  // ζ = exp(2πi / m)
  std::vector<size_t> rot(slots_);
  size_t g = 1;
  for (size_t j = 0; j < slots_; ++j) {
    rot[j] = g;
    g = g * 5 % m;
  }
  twiddles_.resize(slots_ > 1 ? slots_ - 1 : 0);
  for (size_t len = 2; len <= slots_; len <<= 1) {
    const size_t lenh = len / 2, lenq = len * 4, gap = m / lenq;
    for (size_t j = 0; j < lenh; ++j) {
      const size_t idx = (rot[j] % lenq) * gap;
      const long double angle = 2.0L * std::numbers::pi_v<long double> * idx / m;
      twiddles_[lenh - 1 + j] = {static_cast<double>(std::cos(angle)),
                                 static_cast<double>(std::sin(angle))};
    }
  }
  bitrev_.resize(slots_);
  for (size_t i = 0; i < slots_; ++i)
    bitrev_[i] = ring::bit_reverse(static_cast<uint32_t>(i), log_slots_);
}

void SpecialFFT::bit_reverse_permute(std::complex<double>* a) const {
  for (size_t i = 0; i < slots_; ++i) {
    const size_t j = bitrev_[i];
    if (i < j) std::swap(a[i], a[j]);
  }
}

void SpecialFFT::forward(std::complex<double>* u) const {
  bit_reverse_permute(u);
  for (size_t len = 2; len <= slots_; len <<= 1) {
    const size_t lenh = len / 2;
    const std::complex<double>* w = twiddles_.data() + lenh - 1;
    for (size_t i = 0; i < slots_; i += len) {
      for (size_t j = 0; j < lenh; ++j) {
        const std::complex<double> a = u[i + j];
        const std::complex<double> b = cmul(u[i + j + lenh], w[j]);
        u[i + j] = a + b;
        u[i + j + lenh] = a - b;
      }
    }
  }
}

void SpecialFFT::inverse(std::complex<double>* z) const {
  for (size_t len = slots_; len >= 2; len >>= 1) {
    const size_t lenh = len / 2;
    const std::complex<double>* w = twiddles_.data() + lenh - 1;
    for (size_t i = 0; i < slots_; i += len) {
      for (size_t j = 0; j < lenh; ++j) {
        const std::complex<double> a = z[i + j];
        const std::complex<double> b = z[i + j + lenh];
        z[i + j] = a + b;
        z[i + j + lenh] = cmul(a - b, std::conj(w[j]));
      }
    }
  }
  bit_reverse_permute(z);
  const double inv = 1.0 / static_cast<double>(slots_);
  for (size_t i = 0; i < slots_; ++i) z[i] *= inv;
}

}  // namespace heinfer::ckks
