// Evaluator: rotations and conjugation (Galois automorphisms X -> X^g).
//
// In the NTT domain (bit-reversed evaluation order, ntt.h) the automorphism is a pure
// index permutation (CKKSContext::galois_permutation); then σ(c_1), encrypted under
// σ(s), is key-switched back to s (hybrid key switching, key_switch.h).
#include <omp.h>

#include <cstring>
#include <stdexcept>

#include "ckks/evaluator.h"
#include "ckks/key_switch.h"
#include "ckks/scratch.h"
#include "ring/parallel.h"

namespace heinfer::ckks {

void Evaluator::rotate(const Ciphertext& a, int steps, const GaloisKeys& gk,
                       Ciphertext& out) const {
  const uint32_t elt = galois_element_for_step(steps, context_->n());
  if (elt == 1) {
    check(a, "rotate");
    if (&a != &out) out = a;
    return;
  }
  apply_galois(a, elt, gk, out);
}

void Evaluator::conjugate(const Ciphertext& a, const GaloisKeys& gk, Ciphertext& out) const {
  apply_galois(a, galois_element_conjugate(context_->n()), gk, out);
}

void Evaluator::apply_galois(const Ciphertext& a, uint32_t elt, const GaloisKeys& gk,
                             Ciphertext& out) const {
  check(a, "apply_galois");
  if (a.size() != 2) {
    throw std::invalid_argument("apply_galois: ciphertext must have size 2 (relinearize first)");
  }
  const auto it = gk.keys.find(elt);
  if (it == gk.keys.end()) {
    throw std::invalid_argument("apply_galois: no Galois key for element " + std::to_string(elt));
  }
  const CKKSContext& ctx = *context_;
  const std::vector<uint32_t>& perm = ctx.galois_permutation(elt);
  const size_t n = ctx.n(), level = a.level(), lq = level + 1;
  const double scale = a.scale();
  const bool in_place = &a == &out;

  uint64_t* c1 = detail::scratch(detail::Scratch::GaloisInput, lq * n);
  uint64_t* c0 = in_place ? detail::scratch(detail::Scratch::GaloisC0, lq * n) : nullptr;
  if (!in_place) {
    out.resize(n, 2, level);
    c0 = out.poly(0);
  }
  const uint32_t* pm = perm.data();
#pragma omp parallel for if (ring::detail::use_parallel(2 * lq, n))
  for (size_t t = 0; t < 2 * lq; ++t) {
    const size_t p = t / lq, i = t % lq;
    const uint64_t* src = a.limb(p, i);
    uint64_t* dst = (p == 0 ? c0 : c1) + i * n;
    for (size_t x = 0; x < n; ++x) dst[x] = src[pm[x]];
  }
  if (in_place) {
    std::memcpy(out.poly(0), c0, lq * n * sizeof(uint64_t));
    out.clear_seed();
  }
  detail::key_switch(ctx, level, c1, it->second, out.poly(0), true, out.poly(1), false);
  out.set_scale(scale);
  out.set_ntt_form(true);
}

}  // namespace heinfer::ckks
