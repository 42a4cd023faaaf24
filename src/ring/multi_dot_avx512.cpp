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
#include <optional>

// GCC 12's AVX-512 headers build the unused pass-through operand of masked builtins from
// _mm512_undefined_epi32(), which -Wmaybe-uninitialized reports inside the header (a
// known false positive, GCC bug 105593; the other ring/*_avx512.cpp silence it the same way).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
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

/// The terms of M outputs over 16 coefficients from `base`, in runs of at most `run`
/// terms: term(m, x0, x1, s) for every input k (x0, x1: its two vectors, s: scalars[m][k]
/// broadcast), then after_run(last) once per run.
template <int M, class Term, class AfterRun>
inline void for_each_term(const std::uint64_t* const* inputs, std::size_t count, const std::uint64_t* const* scalars,
                          std::size_t base, std::size_t run, Term term, AfterRun after_run) {
  for (std::size_t k0 = 0; k0 < count; k0 += run) {
    const std::size_t k1 = std::min(count, k0 + run);
    for (std::size_t k = k0; k < k1; ++k) {
      const std::uint64_t* p = inputs[k] + base;
      const __m512i x0 = _mm512_loadu_si512(p);
      const __m512i x1 = _mm512_loadu_si512(p + 8);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) term(m, x0, x1, _mm512_set1_epi64(static_cast<long long>(scalars[m][k])));
    }
    after_run(k1 == count);
  }
}

template <int M>
void block16(const std::uint64_t* const* inputs, std::size_t count, const std::uint64_t* const* scalars,
             std::uint64_t* const* out, std::size_t base, const Fold& f, const std::uint64_t* const* own,
             const std::uint64_t* own_scalars) {
  __m512i lo[M][2], hi[M][2];
  for (int m = 0; m < M; ++m) {
    for (int v = 0; v < 2; ++v) lo[m][v] = hi[m][v] = _mm512_setzero_si512();
  }
  for_each_term<M>(
      inputs, count, scalars, base, kChunk,
      [&](int m, __m512i x0, __m512i x1, __m512i s) {
        lo[m][0] = _mm512_madd52lo_epu64(lo[m][0], x0, s);
        hi[m][0] = _mm512_madd52hi_epu64(hi[m][0], x0, s);
        lo[m][1] = _mm512_madd52lo_epu64(lo[m][1], x1, s);
        hi[m][1] = _mm512_madd52hi_epu64(hi[m][1], x1, s);
      },
      [&](bool last) {
        if (last) return;
        for (int m = 0; m < M; ++m) {  // carry the sums so far as residues below q
          for (int v = 0; v < 2; ++v) {
            lo[m][v] = f.fold(lo[m][v], hi[m][v]);
            hi[m][v] = f.zero;
          }
        }
      });
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

/// Primes below 2^31: exact 64-bit products (vpmuludq: one instruction per 8 products,
/// against two IFMA halves), summed `every` at a time in 64-bit lanes (every·(q-1)^2 <
/// 2^64) and then split into 32-bit halves lo, hi (below (count + 1)·2^32 each); the
/// value lo + 2^32·hi goes to the same reduction as the IFMA sums, written as
/// (lo + 2^32·(hi mod 2^20)) + 2^52·(hi >> 20).
template <int M>
void int_block16(const std::uint64_t* const* inputs, std::size_t count, const std::uint64_t* const* scalars,
                 std::uint64_t* const* out, std::size_t base, const Fold& f, std::size_t every,
                 const std::uint64_t* const* own, const std::uint64_t* own_scalars) {
  const __m512i mask32 = _mm512_set1_epi64(0xffffffffLL), mask20 = _mm512_set1_epi64((1LL << 20) - 1);
  __m512i acc[M][2], lo[M][2], hi[M][2];
  for (int m = 0; m < M; ++m) {
    for (int v = 0; v < 2; ++v) acc[m][v] = lo[m][v] = hi[m][v] = _mm512_setzero_si512();
  }
  auto split = [&] {
    for (int m = 0; m < M; ++m) {
      for (int v = 0; v < 2; ++v) {
        hi[m][v] = _mm512_add_epi64(hi[m][v], _mm512_srli_epi64(acc[m][v], 32));
        lo[m][v] = _mm512_add_epi64(lo[m][v], _mm512_and_si512(acc[m][v], mask32));
        acc[m][v] = _mm512_setzero_si512();
      }
    }
  };
  for_each_term<M>(
      inputs, count, scalars, base, every,
      [&](int m, __m512i x0, __m512i x1, __m512i s) {
        acc[m][0] = _mm512_add_epi64(acc[m][0], _mm512_mul_epu32(x0, s));
        acc[m][1] = _mm512_add_epi64(acc[m][1], _mm512_mul_epu32(x1, s));
      },
      [&](bool) { split(); });
  if (own) {  // one more term per output, in a split of its own
    for (int m = 0; m < M; ++m) {
      if (!own[m]) continue;
      const __m512i s = _mm512_set1_epi64(static_cast<long long>(own_scalars[m]));
      acc[m][0] = _mm512_mul_epu32(_mm512_loadu_si512(own[m] + base), s);
      acc[m][1] = _mm512_mul_epu32(_mm512_loadu_si512(own[m] + base + 8), s);
    }
    split();
  }
  for (int m = 0; m < M; ++m) {
    std::uint64_t* o = out[m] + base;
    for (int v = 0; v < 2; ++v) {
      const __m512i l = _mm512_add_epi64(lo[m][v], _mm512_slli_epi64(_mm512_and_si512(hi[m][v], mask20), 32));
      _mm512_storeu_si512(o + 8 * v, f.fold(l, _mm512_srli_epi64(hi[m][v], 20)));
    }
  }
}

/// The reduction constants of q, computed once per thread and prime (their 128-bit
/// divisions would cost as much as a short sum).
const Fold& fold_for(std::uint64_t q) {
  thread_local std::optional<Fold> cached;
  thread_local std::uint64_t cached_q = 0;
  if (!cached || cached_q != q) {
    cached.emplace(q);
    cached_q = q;
  }
  return *cached;
}

}  // namespace

void multi_dot_ifma(const std::uint64_t* const* inputs, std::size_t count, const std::uint64_t* const* scalars,
                    std::size_t outputs, std::uint64_t* const* out, std::size_t len, const Modulus& q,
                    const std::uint64_t* const* own, const std::uint64_t* own_scalars) {
  const Fold& f = fold_for(q.value);
  if (q.value < (std::uint64_t{1} << 31)) {
    const std::uint64_t r = q.value - 1;
    const auto every = static_cast<std::size_t>(~std::uint64_t{0} / (r * r));
    for (std::size_t base = 0; base < len; base += 16) {
      switch (outputs) {
        case 4: int_block16<4>(inputs, count, scalars, out, base, f, every, own, own_scalars); break;
        case 3: int_block16<3>(inputs, count, scalars, out, base, f, every, own, own_scalars); break;
        case 2: int_block16<2>(inputs, count, scalars, out, base, f, every, own, own_scalars); break;
        default: int_block16<1>(inputs, count, scalars, out, base, f, every, own, own_scalars); break;
      }
    }
    return;
  }
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
