// Evaluator: rescale (divide by the last prime with rounding).
//
// For each polynomial: x_l (the last limb) to coefficient form, + floor(q_l/2); for each
// i < l: t = (x_l + floor(q_l/2) mod q_i) - floor(q_l/2), NTT, c_i = (c_i - t)·q_l^-1.
// This is round(c / q_l) (Cheon, Han, Kim, Kim, Song, "A full RNS variant of approximate
// homomorphic encryption", SAC 2018, section 3.3).
#include <omp.h>

#include <algorithm>
#include <stdexcept>

#include "ckks/evaluator.h"
#include "ckks/scratch.h"
#include "ring/parallel.h"
#include "ring/poly_arith.h"
#include "ring/rns_kernels.h"

namespace heinfer::ckks {

void Evaluator::rescale(const Ciphertext& a, Ciphertext& out) const {
  check(a, "rescale");
  if (a.level() == 0) throw std::invalid_argument("rescale: ciphertext is at level 0");
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), level = a.level(), size = a.size();
  const LevelData& ld = ctx.level_data(level);
  const ring::Modulus& q_last = ctx.modulus(level);
  const uint64_t ql = q_last.value, half = ql >> 1;
  const double scale = a.scale() / static_cast<double>(ql);

  uint64_t* last = detail::scratch(detail::Scratch::Rescale, size * n);
#pragma omp parallel for if (ring::detail::use_parallel(size, n * 16))
  for (size_t p = 0; p < size; ++p) {
    uint64_t* dst = last + p * n;
    const uint64_t* src = a.limb(p, level);
    std::copy(src, src + n, dst);
    ctx.ntt(level).inverse(dst);
    ring::detail::add_small(dst, nullptr, half, ql, n);
  }

  const bool in_place = &a == &out;
  if (!in_place) out.resize(n, size, level - 1);
  const size_t tasks = size * level;
#pragma omp parallel for if (ring::detail::use_parallel(tasks, n * 16))
  for (size_t t = 0; t < tasks; ++t) {
    const size_t p = t / level, i = t % level;
    const ring::Modulus& q = ctx.modulus(i);
    uint64_t* tmp = detail::scratch(detail::Scratch::RescaleTmp, n);
    ring::detail::reduce_sub_limb(last + p * n, ql, ld.half_q_last_mod[i], q, tmp, n);
    ctx.ntt(i).forward(tmp);
    uint64_t* dst = out.limb(p, i);  // in place: the same limb (layout compacted below)
    ring::sub_poly(a.limb(p, i), tmp, tmp, n, q);
    ring::multiply_scalar_poly(tmp, ld.inv_q_last[i], dst, n, q);
  }
  if (in_place) {
    out.drop_limbs(1);
    out.clear_seed();
  }
  out.set_scale(scale);
  out.set_ntt_form(true);
}

}  // namespace heinfer::ckks
