#include "ckks/ntt.h"

#include <stdexcept>
#include <string>

#include "ckks/cpu_features.h"
#include "ckks/primes.h"

namespace heinfer::ckks {

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

void NTTTables::forward(uint64_t* a) const { forward_scalar(a); }

void NTTTables::inverse(uint64_t* a) const { inverse_scalar(a); }

}  // namespace heinfer::ckks
