#include "ckks/key_switch.h"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "ckks/scratch.h"
#include "ring/parallel.h"
#include "ring/poly_arith.h"
#include "ring/rns_kernels.h"

namespace heinfer::ckks::detail {

namespace {

constexpr size_t kBlock = 64;  // coefficients per block of 128-bit accumulators

}  // namespace

void mod_down(const CKKSContext& ctx, size_t level, ModDownTarget* targets, size_t count) {
  const size_t n = ctx.n(), lq = level + 1, k_count = ctx.special_count();
  const size_t q_count = ctx.coeff_modulus_count();
  const ModDownData& md = ctx.mod_down();

  // Phase A: special limbs to coefficient form, + e + floor(P/2); for K > 1 times
  // (P/p_k)^-1 (y_k of the base conversion).
  const size_t tasks_a = count * k_count;
#pragma omp parallel for if (ring::detail::use_parallel(tasks_a, n * 16))
  for (size_t t = 0; t < tasks_a; ++t) {
    const ModDownTarget& tg = targets[t / k_count];
    const size_t k = t % k_count;
    const ring::Modulus& pk = ctx.modulus(q_count + k);
    const uint64_t pv = pk.value;
    uint64_t* x = tg.extended + (lq + k) * n;
    ctx.ntt(q_count + k).inverse(x);
    ring::detail::add_small(x, tg.error, md.half_p_mod_p[k], pv, n);
    if (k_count > 1) ring::multiply_scalar_poly(x, md.inv_p_hat[k], x, n, pk);
  }

  // Phase B, per q-limb: w = [x + e + h]_P mod q_i - h - e (exact base conversion), NTT,
  // out (+)= (x_i - w) · P^-1 = round((x + e) / P).
  const size_t tasks_b = count * lq;
#pragma omp parallel for if (ring::detail::use_parallel(tasks_b, n * 16))
  for (size_t t = 0; t < tasks_b; ++t) {
    const ModDownTarget& tg = targets[t / lq];
    const size_t i = t % lq;
    const ring::Modulus& qi = ctx.modulus(i);
    const uint64_t qv = qi.value;
    uint64_t* w = scratch(Scratch::ModDownTmp, n);
    const uint64_t* sp = tg.extended + lq * n;
    const uint64_t half = md.half_p_mod_q[i];
    if (k_count == 1) {
      ring::detail::reduce_sub_limb(sp, ctx.modulus(q_count).value, half, qi, w, n);
      if (tg.error != nullptr) ring::detail::sub_small(w, tg.error, 0, qv, n);
    } else {
      const uint64_t neg_p = md.p_mod_q[i] == 0 ? 0 : qv - md.p_mod_q[i];
      ring::u128 acc[kBlock];
      for (size_t base = 0; base < n; base += kBlock) {
        for (size_t c = 0; c < kBlock; ++c) {
          double f = 0;
          for (size_t k = 0; k < k_count; ++k) f += static_cast<double>(sp[k * n + base + c]) * md.inv_p[k];
          acc[c] = static_cast<ring::u128>(static_cast<uint64_t>(f)) * neg_p;  // - floor(f) · P
        }
        for (size_t k = 0; k < k_count; ++k) {
          const uint64_t f = md.p_hat_mod_q[k * q_count + i];
          const uint64_t* src = sp + k * n + base;
          for (size_t c = 0; c < kBlock; ++c) acc[c] += static_cast<ring::u128>(src[c]) * f;
        }
        for (size_t c = 0; c < kBlock; ++c) w[base + c] = ring::reduce_128(acc[c], qi);
      }
      ring::detail::sub_small(w, tg.error, half, qv, n);
    }
    ctx.ntt(i).forward(w);
    ring::sub_poly(tg.extended + i * n, w, w, n, qi);
    uint64_t* out = tg.out + i * n;
    if (tg.accumulate) {
      ring::multiply_scalar_poly(w, md.inv_p_mod_q[i], w, n, qi);
      ring::add_poly(out, w, out, n, qi);
    } else {
      ring::multiply_scalar_poly(w, md.inv_p_mod_q[i], out, n, qi);
    }
  }
}

void key_switch(const CKKSContext& ctx, size_t level, const uint64_t* c,
                const KeySwitchingKey& key, uint64_t* out0, bool accumulate0, uint64_t* out1,
                bool accumulate1) {
  const size_t n = ctx.n(), lq = level + 1, k_count = ctx.special_count();
  const size_t q_count = ctx.coeff_modulus_count(), key_limbs = ctx.key_limb_count();
  const size_t targets = lq + k_count;
  const LevelData& ld = ctx.level_data(level);
  const size_t dnum = ld.digits.size();
  if (key.digits < dnum || key.data.size() != key.digits * 2 * key_limbs * n) {
    throw std::invalid_argument("key switching: the key does not match the context");
  }

  // Phase 1: c to coefficient form; inside multi-prime digits, y_i = x_i · (Q_D/q_i)^-1.
  uint64_t* coeff = scratch(Scratch::KsCoeff, lq * n);
#pragma omp parallel for if (ring::detail::use_parallel(lq, n * 16))
  for (size_t i = 0; i < lq; ++i) {
    uint64_t* dst = coeff + i * n;
    std::memcpy(dst, c + i * n, n * sizeof(uint64_t));
    ctx.ntt(i).inverse(dst);
    const DigitData& g = ld.digits[i / k_count];
    if (g.count > 1) {
      ring::multiply_scalar_poly(dst, g.inv_punctured[i - g.first], dst, n, ctx.modulus(i));
    }
  }
  // Phase 1b: rounding corrections v = round(Σ_i y_i / q_i) of multi-prime digits.
  uint8_t* round_v = nullptr;
  if (k_count > 1) {
    round_v = reinterpret_cast<uint8_t*>(scratch(Scratch::KsRound, (dnum * n + 7) / 8));
#pragma omp parallel for if (ring::detail::use_parallel(dnum, n * 2))
    for (size_t j = 0; j < dnum; ++j) {
      const DigitData& g = ld.digits[j];
      if (g.count < 2) continue;
      uint8_t* v = round_v + j * n;
      for (size_t x = 0; x < n; ++x) {
        double f = 0;
        for (size_t i = 0; i < g.count; ++i) {
          f += static_cast<double>(coeff[(g.first + i) * n + x]) * g.inv_q[i];
        }
        v[x] = static_cast<uint8_t>(std::nearbyint(f));
      }
    }
  }

  // Phase 2: per target limb, mod-up of every digit, then the inner product with the key.
  uint64_t* ext = scratch(Scratch::KsExtended, 2 * targets * n);
#pragma omp parallel for schedule(dynamic) if (ring::detail::use_parallel(targets, n * 16))
  for (size_t t = 0; t < targets; ++t) {
    const size_t gi = t < lq ? t : q_count + (t - lq);  // global prime / key limb index
    const ring::Modulus& m = ctx.modulus(gi);
    uint64_t* buf = scratch(Scratch::KsDigits, n);
    uint64_t* acc0 = ext + t * n;
    uint64_t* acc1 = ext + (targets + t) * n;
    for (size_t j = 0; j < dnum; ++j) {
      const DigitData& g = ld.digits[j];
      const uint64_t* src;
      if (t >= g.first && t < g.first + g.count) {  // t inside digit j: exact, already NTT
        src = c + t * n;
      } else {
        if (g.count == 1) {
          ring::detail::centered_limb(coeff + g.first * n, ctx.modulus(g.first).value, m, buf, n);
        } else {
          const uint64_t corr = g.neg_qd_mod_target[t];
          const uint8_t* v = round_v + j * n;
          ring::u128 acc[kBlock];
          for (size_t base = 0; base < n; base += kBlock) {
            for (size_t x = 0; x < kBlock; ++x)
              acc[x] = static_cast<ring::u128>(v[base + x]) * corr;
            for (size_t i = 0; i < g.count; ++i) {
              const uint64_t f = g.punctured_mod_target[i * targets + t];
              const uint64_t* y = coeff + (g.first + i) * n + base;
              for (size_t x = 0; x < kBlock; ++x) acc[x] += static_cast<ring::u128>(y[x]) * f;
            }
            for (size_t x = 0; x < kBlock; ++x) buf[base + x] = ring::reduce_128(acc[x], m);
          }
        }
        ctx.ntt(gi).forward(buf);
        src = buf;
      }
      const uint64_t* k0 = key.limb(j, 0, gi, key_limbs, n);
      const uint64_t* k1 = key.limb(j, 1, gi, key_limbs, n);
      if (j == 0) {
        ring::multiply_poly(src, k0, acc0, n, m);
        ring::multiply_poly(src, k1, acc1, n, m);
      } else {
        ring::multiply_add_poly(src, k0, acc0, n, m);
        ring::multiply_add_poly(src, k1, acc1, n, m);
      }
    }
  }

  // Phase 3: divide both polynomials by P and write / add into the outputs.
  ModDownTarget md[2] = {{ext, nullptr, out0, accumulate0},
                         {ext + targets * n, nullptr, out1, accumulate1}};
  mod_down(ctx, level, md, 2);
}

}  // namespace heinfer::ckks::detail
