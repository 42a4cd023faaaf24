#include "ring/multiprecision.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace heinfer::ring::mp {

std::vector<uint64_t> product(const std::vector<uint64_t>& factors) {
  std::vector<uint64_t> r(factors.size() + 1, 0);
  r[0] = 1;
  std::vector<uint64_t> tmp(r.size());
  for (uint64_t f : factors) {
    std::fill(tmp.begin(), tmp.end(), 0);
    multiply_add_word(tmp.data(), r.data(), f, r.size());
    r.swap(tmp);
  }
  return r;
}

uint64_t multiply_add_word(uint64_t* acc, const uint64_t* a, uint64_t b, size_t words) {
  uint64_t carry = 0;
  for (size_t i = 0; i < words; ++i) {
    const u128 t = static_cast<u128>(a[i]) * b + acc[i] + carry;
    acc[i] = static_cast<uint64_t>(t);
    carry = static_cast<uint64_t>(t >> 64);
  }
  return carry;
}

uint64_t sub(uint64_t* a, const uint64_t* b, size_t words) {
  uint64_t borrow = 0;
  for (size_t i = 0; i < words; ++i) {
    const uint64_t ai = a[i];
    const uint64_t d = ai - b[i];
    const uint64_t b1 = ai < b[i];
    a[i] = d - borrow;
    borrow = b1 | (d < borrow);
  }
  return borrow;
}

void sub(const uint64_t* a, const uint64_t* b, uint64_t* out, size_t words) {
  uint64_t borrow = 0;
  for (size_t i = 0; i < words; ++i) {
    const uint64_t d = a[i] - b[i];
    const uint64_t b1 = a[i] < b[i];
    out[i] = d - borrow;
    borrow = b1 | (d < borrow);
  }
}

int compare(const uint64_t* a, const uint64_t* b, size_t words) {
  for (size_t i = words; i-- > 0;) {
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return 0;
}

uint64_t mod_word(const uint64_t* a, size_t words, const Modulus& m) {
  // Horner from the top word: r = (r * 2^64 + a[i]) mod m.
  uint64_t r = 0;
  for (size_t i = words; i-- > 0;) {
    r = reduce_128((static_cast<u128>(r) << 64) | a[i], m);
  }
  return r;
}

double to_double(const uint64_t* a, size_t words) {
  size_t top = words;
  while (top > 0 && a[top - 1] == 0) --top;
  if (top == 0) return 0.0;
  // Two top words carry 65..128 significant bits: plenty for a correctly scaled double.
  // The lower words only matter through sticky rounding, which is below 2^-64 relative.
  double hi = static_cast<double>(a[top - 1]);
  double r = hi;
  if (top >= 2) r = std::ldexp(hi, 64) + static_cast<double>(a[top - 2]);
  const int shift = 64 * static_cast<int>(top >= 2 ? top - 2 : top - 1);
  return std::ldexp(r, shift);
}

double log2(const uint64_t* a, size_t words) {
  size_t top = words;
  while (top > 0 && a[top - 1] == 0) --top;
  if (top == 0) return -std::numeric_limits<double>::infinity();
  const size_t start = top >= 2 ? top - 2 : 0;
  const double v = to_double(a + start, top - start);
  return std::log2(v) + 64.0 * static_cast<double>(start);
}

void shift_right_one(uint64_t* a, size_t words) {
  for (size_t i = 0; i < words; ++i) {
    a[i] = (a[i] >> 1) | (i + 1 < words ? a[i + 1] << 63 : 0);
  }
}

}  // namespace heinfer::ring::mp
