#include "ring/ntt.h"

#include <stdexcept>
#include <string>

#include "ring/cpu_features.h"
#include "ring/primes.h"
#include "ring/simd_kernels.h"
#include "ring/simd_kernels_avx2.h"

namespace heinfer::ring {

NTTTables::NTTTables(size_t n, const Modulus& q) : n_(n), q_(q) {
  if (n < 8 || n > (size_t{1} << 17) || (n & (n - 1)) != 0) {
    throw std::invalid_argument("NTTTables: ring degree " + std::to_string(n) +
                                " is not a power of two in [8, 2^17]");
  }
  log_n_ = __builtin_ctzll(n);
  root_ = minimal_primitive_root(q.value, n);  // throws if q != 1 mod 2n
  const uint64_t qv = q.value;
  const uint64_t inv_root = inv_mod(root_, q_);

  root_powers_.resize(n);
  inv_root_powers_.resize(n);
  root_powers_shoup_.resize(n);
  inv_root_powers_shoup_.resize(n);
  uint64_t power = 1, inv_power = 1;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t idx = bit_reverse(static_cast<uint32_t>(i), log_n_);
    root_powers_[idx] = power;
    inv_root_powers_[idx] = inv_power;
    power = mul_mod(power, root_, q_);
    inv_power = mul_mod(inv_power, inv_root, q_);
  }
  for (size_t i = 0; i < n; ++i) {
    root_powers_shoup_[i] = shoup_precompute(root_powers_[i], qv);
    inv_root_powers_shoup_[i] = shoup_precompute(inv_root_powers_[i], qv);
  }
  inv_n_ = inv_mod(n, q_);
  inv_n_shoup_ = shoup_precompute(inv_n_, qv);

  if (qv < kIfmaModulusBound && n >= 16 && cpu_has_avx512_ifma()) {
    // Layout of ifma_ (offsets in units of n/2): ws [0,2), iws [2,4), w4 4, w4s 5, w2 6,
    // w2s 7, iw4 8, iw4s 9, iw2 10, iw2s 11; then shoup52(1/n), n^-1·ψ^-bitrev(1) and its
    // shoup52 (the last inverse stage with the 1/n factor merged).
    const size_t h = n / 2;
    ifma_.resize(12 * h + 3);
    uint64_t* ws = ifma_.data();
    uint64_t* iws = ws + n;
    for (size_t i = 0; i < n; ++i) {
      // floor(w·2^52/q) = floor(floor(w·2^64/q) / 2^12): no second division needed.
      ws[i] = root_powers_shoup_[i] >> 12;
      iws[i] = inv_root_powers_shoup_[i] >> 12;
    }
    uint64_t* w4 = ifma_.data() + 4 * h;
    uint64_t* w2 = ifma_.data() + 6 * h;
    uint64_t* iw4 = ifma_.data() + 8 * h;
    uint64_t* iw2 = ifma_.data() + 10 * h;
    for (size_t b = 0; b < n / 16; ++b) {
      for (size_t l = 0; l < 8; ++l) {
        const size_t k = 8 * b + l;
        const size_t i4 = n / 8 + 2 * b + l / 4;  // stage t = 4: group of lane l
        const size_t i2 = n / 4 + 4 * b + l / 2;  // stage t = 2
        w4[k] = root_powers_[i4];
        w4[h + k] = ws[i4];
        w2[k] = root_powers_[i2];
        w2[h + k] = ws[i2];
        iw4[k] = inv_root_powers_[i4];
        iw4[h + k] = iws[i4];
        iw2[k] = inv_root_powers_[i2];
        iw2[h + k] = iws[i2];
      }
    }
    const uint64_t inv_n_w1 = mul_mod(inv_n_, inv_root_powers_[1], q_);
    ifma_[12 * h + 0] = simd::shoup52(inv_n_, qv);
    ifma_[12 * h + 1] = inv_n_w1;
    ifma_[12 * h + 2] = simd::shoup52(inv_n_w1, qv);
  }

  if (qv < kAvx2ModulusBound && n >= 16 && cpu_has_avx2_fma()) {
    // Layout of avx2_ (doubles; offsets in units of n/2): w [0,2), wq [2,4), iw [4,6),
    // iwq [6,8), w2 8, w2q 9, iw2 10, iw2q 11, iw1 12, iw1q 13; then n^-1, its quotient,
    // n^-1·iw[1] and its quotient. A quotient is fl(w/q).
    const size_t h = n / 2;
    const double qd = static_cast<double>(qv);
    avx2_.resize(14 * h + 4);
    double* d = avx2_.data();
    for (size_t i = 0; i < n; ++i) {
      d[i] = static_cast<double>(root_powers_[i]);
      d[n + i] = d[i] / qd;
      d[2 * n + i] = static_cast<double>(inv_root_powers_[i]);
      d[3 * n + i] = d[2 * n + i] / qd;
    }
    for (size_t b = 0; b < n / 8; ++b) {
      for (size_t l = 0; l < 4; ++l) {
        const size_t k = 4 * b + l;
        const size_t i2 = n / 4 + 2 * b + l / 2;             // distance 2: group of lane l
        const size_t i1 = n / 2 + 4 * b + (l == 1 ? 2 : l == 2 ? 1 : l);  // inverse distance 1
        d[8 * h + k] = d[i2];
        d[9 * h + k] = d[n + i2];
        d[10 * h + k] = d[2 * n + i2];
        d[11 * h + k] = d[3 * n + i2];
        d[12 * h + k] = d[2 * n + i1];
        d[13 * h + k] = d[3 * n + i1];
      }
    }
    const uint64_t inv_n_w1 = mul_mod(inv_n_, inv_root_powers_[1], q_);
    d[14 * h + 0] = static_cast<double>(inv_n_);
    d[14 * h + 1] = static_cast<double>(inv_n_) / qd;
    d[14 * h + 2] = static_cast<double>(inv_n_w1);
    d[14 * h + 3] = static_cast<double>(inv_n_w1) / qd;
    const avx2::NttReductions r = avx2::ntt_reductions(n, qv);
    avx2_forward_reduce_ = r.forward;
    avx2_inverse_reduce_ = r.inverse;
  }
}

bool NTTTables::uses_ifma() const { return !ifma_.empty() && use_ifma(q_.value); }

bool NTTTables::uses_avx2() const { return !avx2_.empty() && use_avx2(q_.value); }

SimdPath NTTTables::path() const {
  if (uses_ifma()) return SimdPath::Ifma;
  if (uses_avx2()) return SimdPath::Avx2;
  return SimdPath::Portable;
}

void NTTTables::forward_scalar(uint64_t* a) const {
  const uint64_t q = q_.value;
  const uint64_t two_q = 2 * q;
  size_t t = n_;
  for (size_t m = 1; m < n_; m <<= 1) {
    t >>= 1;
    for (size_t i = 0; i < m; ++i) {
      const uint64_t w = root_powers_[m + i];
      const uint64_t ws = root_powers_shoup_[m + i];
      uint64_t* x = a + 2 * i * t;
      uint64_t* y = x + t;
      for (size_t j = 0; j < t; ++j) {
        uint64_t u = x[j];
        u = u >= two_q ? u - two_q : u;             // [0, 2q)
        const uint64_t v = mul_mod_shoup_lazy(y[j], w, ws, q);  // [0, 2q)
        x[j] = u + v;                               // [0, 4q)
        y[j] = u + two_q - v;                       // [0, 4q)
      }
    }
  }
  for (size_t j = 0; j < n_; ++j) {
    uint64_t u = a[j];
    u = u >= two_q ? u - two_q : u;
    a[j] = u >= q ? u - q : u;
  }
}

void NTTTables::inverse_scalar(uint64_t* a) const {
  const uint64_t q = q_.value;
  const uint64_t two_q = 2 * q;
  size_t t = 1;
  for (size_t m = n_ >> 1; m >= 1; m >>= 1) {
    for (size_t i = 0; i < m; ++i) {
      const uint64_t w = inv_root_powers_[m + i];
      const uint64_t ws = inv_root_powers_shoup_[m + i];
      uint64_t* x = a + 2 * i * t;
      uint64_t* y = x + t;
      for (size_t j = 0; j < t; ++j) {
        const uint64_t u = x[j];  // [0, 2q)
        const uint64_t v = y[j];  // [0, 2q)
        uint64_t s = u + v;
        x[j] = s >= two_q ? s - two_q : s;
        y[j] = mul_mod_shoup_lazy(u + two_q - v, w, ws, q);
      }
    }
    t <<= 1;
  }
  for (size_t j = 0; j < n_; ++j) {
    a[j] = mul_mod_shoup(a[j], inv_n_, inv_n_shoup_, q);
  }
}

namespace {

// View of the IFMA tables (layout: see the constructor). Built per call, since the
// pointers must refer to this object's vectors (NTTTables is copyable).
simd::NttIfmaTables ifma_view(size_t n, uint64_t q, const std::vector<uint64_t>& w,
                              const std::vector<uint64_t>& iw, const std::vector<uint64_t>& t,
                              uint64_t inv_n) {
  const size_t h = n / 2;
  simd::NttIfmaTables v;
  v.n = n;
  v.q = q;
  v.w = w.data();
  v.ws = t.data();
  v.iw = iw.data();
  v.iws = t.data() + n;
  v.w4 = t.data() + 4 * h;
  v.w4s = t.data() + 5 * h;
  v.w2 = t.data() + 6 * h;
  v.w2s = t.data() + 7 * h;
  v.iw4 = t.data() + 8 * h;
  v.iw4s = t.data() + 9 * h;
  v.iw2 = t.data() + 10 * h;
  v.iw2s = t.data() + 11 * h;
  v.inv_n = inv_n;
  v.inv_n_s = t[12 * h + 0];
  v.inv_n_w1 = t[12 * h + 1];
  v.inv_n_w1_s = t[12 * h + 2];
  return v;
}

// View of the AVX2 tables (layout: see the constructor).
avx2::NttTables avx2_view(size_t n, uint64_t q, const std::vector<double>& d, uint32_t forward_reduce,
                          uint32_t inverse_reduce) {
  const size_t h = n / 2;
  avx2::NttTables v;
  v.n = n;
  v.q = static_cast<double>(q);
  v.q_inv = 1.0 / v.q;
  v.w = d.data();
  v.wq = d.data() + n;
  v.iw = d.data() + 2 * n;
  v.iwq = d.data() + 3 * n;
  v.w2 = d.data() + 8 * h;
  v.w2q = d.data() + 9 * h;
  v.iw2 = d.data() + 10 * h;
  v.iw2q = d.data() + 11 * h;
  v.iw1 = d.data() + 12 * h;
  v.iw1q = d.data() + 13 * h;
  v.inv_n = d[14 * h + 0];
  v.inv_n_q = d[14 * h + 1];
  v.inv_n_w1 = d[14 * h + 2];
  v.inv_n_w1_q = d[14 * h + 3];
  v.forward_reduce = forward_reduce;
  v.inverse_reduce = inverse_reduce;
  return v;
}

}  // namespace

void NTTTables::forward(uint64_t* a) const {
  if (uses_ifma()) {
    simd::ntt_forward_ifma(
        ifma_view(n_, q_.value, root_powers_, inv_root_powers_, ifma_, inv_n_), a);
    return;
  }
  if (uses_avx2()) {
    avx2::ntt_forward(avx2_view(n_, q_.value, avx2_, avx2_forward_reduce_, avx2_inverse_reduce_), a);
    return;
  }
  forward_scalar(a);
}

void NTTTables::inverse(uint64_t* a) const {
  if (uses_ifma()) {
    simd::ntt_inverse_ifma(
        ifma_view(n_, q_.value, root_powers_, inv_root_powers_, ifma_, inv_n_), a);
    return;
  }
  if (uses_avx2()) {
    avx2::ntt_inverse(avx2_view(n_, q_.value, avx2_, avx2_forward_reduce_, avx2_inverse_reduce_), a);
    return;
  }
  inverse_scalar(a);
}

}  // namespace heinfer::ring
