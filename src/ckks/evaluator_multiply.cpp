// Evaluator: ciphertext products and relinearization.
#include <omp.h>

#include <cstring>
#include <stdexcept>

#include "ckks/evaluator.h"
#include "ckks/key_switch.h"
#include "ckks/scratch.h"
#include "ring/parallel.h"
#include "ring/poly_arith.h"

namespace heinfer::ckks {

namespace {

// Limb i of the tensor product: c1 and c0 written to out (which may alias a or b), c2 to
// c2_out (which must not alias anything). a, b, out: size-2 ciphertexts' limb pointers.
void tensor_limb(const uint64_t* a0, const uint64_t* a1, const uint64_t* b0, const uint64_t* b1,
                 uint64_t* c0, uint64_t* c1, uint64_t* c2, bool square, size_t n,
                 const ring::Modulus& q) {
  ring::multiply_poly(a1, b1, c2, n, q);
  if (square) {
    ring::multiply_poly(a0, a1, c1, n, q);
    ring::add_poly(c1, c1, c1, n, q);
    ring::multiply_poly(a0, a0, c0, n, q);
  } else {
    // Callers pass (a, b) so that only a may alias out: c1 = a1·b0 (in place on a1)
    // + a0·b1; c0 = a0·b0 last.
    ring::multiply_poly(a1, b0, c1, n, q);
    ring::multiply_add_poly(a0, b1, c1, n, q);
    ring::multiply_poly(a0, b0, c0, n, q);
  }
}

}  // namespace

void Evaluator::multiply(const Ciphertext& a_in, const Ciphertext& b_in, Ciphertext& out) const {
  check(a_in, "multiply");
  check(b_in, "multiply");
  if (a_in.size() != 2 || b_in.size() != 2) {
    throw std::invalid_argument("multiply: both ciphertexts must have size 2 (relinearize first)");
  }
  check_same_level(a_in, b_in.level(), "multiply");
  const bool square = &a_in == &b_in;
  const Ciphertext& a = &out == &b_in ? b_in : a_in;  // the operand that may alias out
  const Ciphertext& b = &out == &b_in ? a_in : b_in;
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), level = a.level(), lq = level + 1;
  const double scale = a.scale() * b.scale();
  out.resize(n, 3, level);  // keeps polys 0 and 1 of an aliased operand
#pragma omp parallel for if (ring::detail::use_parallel(lq, 4 * n))
  for (size_t i = 0; i < lq; ++i) {
    tensor_limb(a.limb(0, i), a.limb(1, i), b.limb(0, i), b.limb(1, i), out.limb(0, i),
                out.limb(1, i), out.limb(2, i), square, n, ctx.modulus(i));
  }
  out.set_scale(scale);
  out.set_ntt_form(true);
}

void Evaluator::relinearize(const Ciphertext& a, const RelinKeys& rk, Ciphertext& out) const {
  check(a, "relinearize");
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), level = a.level(), lq = level + 1;
  if (a.size() == 2) {
    if (&a != &out) out = a;
    return;
  }
  if (&a == &out) {
    detail::key_switch(ctx, level, out.poly(2), rk.key, out.poly(0), true, out.poly(1), true);
    out.resize(n, 2, level);
    return;
  }
  out.resize(n, 2, level);
  std::memcpy(out.poly(0), a.poly(0), 2 * lq * n * sizeof(uint64_t));
  detail::key_switch(ctx, level, a.poly(2), rk.key, out.poly(0), true, out.poly(1), true);
  out.set_scale(a.scale());
  out.set_ntt_form(true);
}

void Evaluator::multiply_relinearize(const Ciphertext& a_in, const Ciphertext& b_in,
                                     const RelinKeys& rk, Ciphertext& out) const {
  check(a_in, "multiply_relinearize");
  check(b_in, "multiply_relinearize");
  if (a_in.size() != 2 || b_in.size() != 2) {
    throw std::invalid_argument("multiply_relinearize: both ciphertexts must have size 2");
  }
  check_same_level(a_in, b_in.level(), "multiply_relinearize");
  const bool square = &a_in == &b_in;
  const Ciphertext& a = &out == &b_in ? b_in : a_in;
  const Ciphertext& b = &out == &b_in ? a_in : b_in;
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), level = a.level(), lq = level + 1;
  const double scale = a.scale() * b.scale();
  uint64_t* c2 = detail::scratch(detail::Scratch::Tensor, lq * n);
  out.resize(n, 2, level);
#pragma omp parallel for if (ring::detail::use_parallel(lq, 4 * n))
  for (size_t i = 0; i < lq; ++i) {
    tensor_limb(a.limb(0, i), a.limb(1, i), b.limb(0, i), b.limb(1, i), out.limb(0, i),
                out.limb(1, i), c2 + i * n, square, n, ctx.modulus(i));
  }
  detail::key_switch(ctx, level, c2, rk.key, out.poly(0), true, out.poly(1), true);
  out.set_scale(scale);
  out.set_ntt_form(true);
}

void Evaluator::multiply_packed(const Ciphertext& a, const Ciphertext& b, const GaloisKeys& gk,
                                Ciphertext& out) const {
  check(a, "multiply_packed");
  check(b, "multiply_packed");
  check_same_level(a, b.level(), "multiply_packed");
  const double scale = 4 * a.scale() * b.scale();
  // u = x + conj(x) = 2·Re, d = x - conj(x) = 2i·Im (per slot).
  Ciphertext conj_a, ua, da, p2;
  conjugate(a, gk, conj_a);
  add(a, conj_a, ua);
  sub(a, conj_a, da);
  if (&a == &b) {
    multiply(ua, ua, out);
    multiply(da, da, p2);
  } else {
    Ciphertext conj_b, ub, db;
    conjugate(b, gk, conj_b);
    add(b, conj_b, ub);
    sub(b, conj_b, db);
    multiply(ua, ub, out);
    multiply(da, db, p2);
  }
  // (2α)(2γ) - i·(2iβ)(2iδ) = 4αγ + 4iβδ.
  multiply_by_i(p2, p2);
  sub(out, p2, out);
  out.set_scale(scale);
}

void Evaluator::multiply_packed(const Ciphertext& a, const Ciphertext& b, const RelinKeys& rk,
                                const GaloisKeys& gk, Ciphertext& out) const {
  Ciphertext product;
  multiply_packed(a, b, gk, product);
  relinearize(product, rk, out);
}

}  // namespace heinfer::ckks
