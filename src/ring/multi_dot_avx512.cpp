// AVX-512 IFMA kernel of ring/multi_dot.h (compiled with -mavx512ifma; called only
// after use_ifma). Products x·s (x, s < q < 2^50) are accumulated as their low and
// high 52-bit halves in 64-bit lanes (vpmadd52luq / vpmadd52huq): the low sums stay below
// 2^64 for chunks of up to 4095 terms (longer sums are reduced between chunks), the high
// sums below 2^60; the value lo + 2^52·hi is then
// reduced once per coefficient, in vector form: with h = hi + (lo >> 52) = h0 + 2^52·h1,
// value ≡ (lo mod 2^52)·1 + h0·(2^52 mod q) + h1·(2^104 mod q), three Shoup products with
// 52-bit constants (D. Harvey, J. Symb. Comp. 2014, β = 2^52), each in [0, 2q), then three
// conditional subtractions.
#include <immintrin.h>

#include <algorithm>

// GCC 12's AVX-512 headers build the unused pass-through operand of masked builtins from
// _mm512_undefined_epi32(), which -Wmaybe-uninitialized reports inside the header (a
// known false positive, GCC bug 105593; the other ring/*_avx512.cpp silence it the same way).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "ring/multi_dot.h"

namespace heinfer::ring::detail {
namespace {

constexpr std::uint64_t kMask52 = (std::uint64_t{1} << 52) - 1;
/// Terms summed between reductions: a carried residue (< 2^50) plus kChunk + 1 low halves
/// (< 2^52 each, the +1 an output's own term) stay below 2^64; the high halves (< 2^48
/// each) below 2^60.
constexpr std::size_t kChunk = 4094;

std::uint64_t shoup52(std::uint64_t w, std::uint64_t q) {
  return static_cast<std::uint64_t>((static_cast<u128>(w) << 52) / q);
}

struct Fold {
  __m512i q, two_q, four_q, neg_q, mask, zero;
  __m512i one, one_s, c1, c1_s, c2, c2_s;
  explicit Fold(std::uint64_t qv) {
    auto set = [](std::uint64_t v) { return _mm512_set1_epi64(static_cast<long long>(v)); };
    q = set(qv);
    two_q = set(2 * qv);
    four_q = set(4 * qv);
    neg_q = set((std::uint64_t{1} << 52) - qv);
    mask = set(kMask52);
    zero = _mm512_setzero_si512();
    const auto r1 = static_cast<std::uint64_t>((static_cast<u128>(1) << 52) % qv);
    const auto r2 = static_cast<std::uint64_t>((static_cast<u128>(r1) * r1) % qv);
    one = set(1);
    one_s = set(shoup52(1, qv));
    c1 = set(r1);
    c1_s = set(shoup52(r1, qv));
    c2 = set(r2);
    c2_s = set(shoup52(r2, qv));
  }
  /// x·w mod q in [0, 2q) for x < 2^52 (Shoup, 52-bit).
  __m512i mul(__m512i x, __m512i w, __m512i ws) const {
    const __m512i qt = _mm512_madd52hi_epu64(zero, x, ws);
    __m512i r = _mm512_madd52lo_epu64(zero, x, w);
    r = _mm512_madd52lo_epu64(r, qt, neg_q);
    return _mm512_and_si512(r, mask);
  }
  static __m512i reduce_once(__m512i x, __m512i m) { return _mm512_min_epu64(x, _mm512_sub_epi64(x, m)); }
  /// (lo + 2^52·hi) mod q for lo < 2^64, hi < 2^61.
  __m512i fold(__m512i lo, __m512i hi) const {
    const __m512i h = _mm512_add_epi64(hi, _mm512_srli_epi64(lo, 52));
    __m512i r = mul(_mm512_and_si512(lo, mask), one, one_s);
    r = _mm512_add_epi64(r, mul(_mm512_and_si512(h, mask), c1, c1_s));
    r = _mm512_add_epi64(r, mul(_mm512_srli_epi64(h, 52), c2, c2_s));  // [0, 6q)
    r = reduce_once(r, four_q);
    r = reduce_once(r, two_q);
    return reduce_once(r, q);
  }
};

template <int M>
void block16(const std::uint64_t* const* inputs, std::size_t count, const std::uint64_t* const* scalars,
             std::uint64_t* const* out, std::size_t base, const Fold& f, const std::uint64_t* const* own,
             const std::uint64_t* own_scalars) {
  __m512i lo[M][2], hi[M][2];
  for (int m = 0; m < M; ++m) {
    for (int v = 0; v < 2; ++v) lo[m][v] = hi[m][v] = _mm512_setzero_si512();
  }
  for (std::size_t k0 = 0; k0 < count; k0 += kChunk) {
    if (k0 > 0) {  // carry the sums so far as residues below q
      for (int m = 0; m < M; ++m) {
        for (int v = 0; v < 2; ++v) {
          lo[m][v] = f.fold(lo[m][v], hi[m][v]);
          hi[m][v] = f.zero;
        }
      }
    }
    const std::size_t k1 = std::min(count, k0 + kChunk);
    for (std::size_t k = k0; k < k1; ++k) {
      const std::uint64_t* p = inputs[k] + base;
      const __m512i x0 = _mm512_loadu_si512(p);
      const __m512i x1 = _mm512_loadu_si512(p + 8);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        const __m512i s = _mm512_set1_epi64(static_cast<long long>(scalars[m][k]));
        lo[m][0] = _mm512_madd52lo_epu64(lo[m][0], x0, s);
        hi[m][0] = _mm512_madd52hi_epu64(hi[m][0], x0, s);
        lo[m][1] = _mm512_madd52lo_epu64(lo[m][1], x1, s);
        hi[m][1] = _mm512_madd52hi_epu64(hi[m][1], x1, s);
      }
    }
  }
  if (own) {  // one more term per output, within the last chunk's bound
    for (int m = 0; m < M; ++m) {
      if (!own[m]) continue;
      const __m512i x0 = _mm512_loadu_si512(own[m] + base);
      const __m512i x1 = _mm512_loadu_si512(own[m] + base + 8);
      const __m512i s = _mm512_set1_epi64(static_cast<long long>(own_scalars[m]));
      lo[m][0] = _mm512_madd52lo_epu64(lo[m][0], x0, s);
      hi[m][0] = _mm512_madd52hi_epu64(hi[m][0], x0, s);
      lo[m][1] = _mm512_madd52lo_epu64(lo[m][1], x1, s);
      hi[m][1] = _mm512_madd52hi_epu64(hi[m][1], x1, s);
    }
  }
  for (int m = 0; m < M; ++m) {
    std::uint64_t* o = out[m] + base;
    _mm512_storeu_si512(o, f.fold(lo[m][0], hi[m][0]));
    _mm512_storeu_si512(o + 8, f.fold(lo[m][1], hi[m][1]));
  }
}

}  // namespace

void multi_dot_ifma(const std::uint64_t* const* inputs, std::size_t count, const std::uint64_t* const* scalars,
                    std::size_t outputs, std::uint64_t* const* out, std::size_t len, const Modulus& q,
                    const std::uint64_t* const* own, const std::uint64_t* own_scalars) {
  const Fold f(q.value);
  for (std::size_t base = 0; base < len; base += 16) {
    switch (outputs) {
      case 4: block16<4>(inputs, count, scalars, out, base, f, own, own_scalars); break;
      case 3: block16<3>(inputs, count, scalars, out, base, f, own, own_scalars); break;
      case 2: block16<2>(inputs, count, scalars, out, base, f, own, own_scalars); break;
      default: block16<1>(inputs, count, scalars, out, base, f, own, own_scalars); break;
    }
  }
}

}  // namespace heinfer::ring::detail
