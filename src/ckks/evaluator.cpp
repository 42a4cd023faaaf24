// Evaluator: checks, additive operations, products by constants, levels, NTT.
#include "ckks/evaluator.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "ckks/scalar_encoding.h"
#include "ring/parallel.h"
#include "ring/poly_arith.h"

namespace heinfer::ckks {

namespace {

std::string fmt_scale(double s) {
  std::ostringstream o;
  o.precision(12);
  o << s << " (2^" << std::log2(s) << ")";
  return o.str();
}

void copy_limb(const uint64_t* src, uint64_t* dst, size_t n) {
  if (src != dst) std::memcpy(dst, src, n * sizeof(uint64_t));
}

}  // namespace

Evaluator::Evaluator(ContextPtr context) : context_(std::move(context)) {}

void Evaluator::check(const Ciphertext& a, const char* op) const {
  const CKKSContext& ctx = *context_;
  if (a.is_compact()) {
    throw std::invalid_argument(std::string(op) + ": compact (seeded or packed) ciphertext; expand() first");
  }
  if (a.n() != ctx.n() || a.level() > ctx.max_level() || a.size() < 2 || a.size() > 3 ||
      a.data().size() != a.size() * a.limb_count() * a.n()) {
    throw std::invalid_argument(std::string(op) + ": ciphertext does not match the context");
  }
  if (!a.is_ntt_form()) {
    throw std::invalid_argument(std::string(op) + ": ciphertext is not in NTT form");
  }
}

void Evaluator::check_same_level(const Ciphertext& a, size_t level, const char* op) const {
  if (a.level() != level) {
    throw std::invalid_argument(std::string(op) + ": level mismatch (" +
                                std::to_string(a.level()) + " vs " + std::to_string(level) + ")");
  }
}

void Evaluator::check_same_scale(double a, double b, const char* op) const {
  if (!(std::fabs(a - b) <= 1e-9 * std::max(std::fabs(a), std::fabs(b)))) {
    throw std::invalid_argument(std::string(op) + ": scale mismatch (" + fmt_scale(a) + " vs " +
                                fmt_scale(b) + ")");
  }
}

// ---------------------------------------------------------------- additive

namespace {

enum class AddOp { Add, Sub };

void add_sub(const CKKSContext& ctx, const Ciphertext& a, const Ciphertext& b, Ciphertext& out,
             AddOp op) {
  const size_t n = ctx.n(), sa = a.size(), sb = b.size(), level = a.level();
  const size_t size = std::max(sa, sb), lq = level + 1;
  const double scale = a.scale();
  out.resize(n, size, level);  // keeps the data of an aliased operand (same shape or more polys)
  const size_t tasks = size * lq;
#pragma omp parallel for if (ring::detail::use_parallel(tasks, n))
  for (size_t t = 0; t < tasks; ++t) {
    const size_t p = t / lq, i = t % lq;
    const ring::Modulus& q = ctx.modulus(i);
    uint64_t* dst = out.limb(p, i);
    if (p < sa && p < sb) {
      if (op == AddOp::Add) ring::add_poly(a.limb(p, i), b.limb(p, i), dst, n, q);
      else ring::sub_poly(a.limb(p, i), b.limb(p, i), dst, n, q);
    } else if (p < sa) {
      copy_limb(a.limb(p, i), dst, n);
    } else if (op == AddOp::Add) {
      copy_limb(b.limb(p, i), dst, n);
    } else {
      ring::negate_poly(b.limb(p, i), dst, n, q);
    }
  }
  out.set_scale(scale);
  out.set_ntt_form(true);
}

}  // namespace

void Evaluator::add(const Ciphertext& a, const Ciphertext& b, Ciphertext& out) const {
  check(a, "add");
  check(b, "add");
  check_same_level(a, b.level(), "add");
  check_same_scale(a.scale(), b.scale(), "add");
  add_sub(*context_, a, b, out, AddOp::Add);
}

void Evaluator::sub(const Ciphertext& a, const Ciphertext& b, Ciphertext& out) const {
  check(a, "sub");
  check(b, "sub");
  check_same_level(a, b.level(), "sub");
  check_same_scale(a.scale(), b.scale(), "sub");
  add_sub(*context_, a, b, out, AddOp::Sub);
}

void Evaluator::negate(const Ciphertext& a, Ciphertext& out) const {
  check(a, "negate");
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), lq = a.limb_count(), tasks = a.size() * lq;
  const double scale = a.scale();
  out.resize(n, a.size(), a.level());
#pragma omp parallel for if (ring::detail::use_parallel(tasks, n))
  for (size_t t = 0; t < tasks; ++t) {
    const size_t p = t / lq, i = t % lq;
    ring::negate_poly(a.limb(p, i), out.limb(p, i), n, ctx.modulus(i));
  }
  out.set_scale(scale);
  out.set_ntt_form(true);
}

namespace {

void check_plain(const CKKSContext& ctx, const Plaintext& p, size_t level, const char* op) {
  if (p.n() != ctx.n() || p.data().size() != p.n() * p.limb_count()) {
    throw std::invalid_argument(std::string(op) + ": plaintext does not match the context");
  }
  if (p.level() != level) {
    throw std::invalid_argument(std::string(op) + ": level mismatch (ciphertext " +
                                std::to_string(level) + " vs plaintext " +
                                std::to_string(p.level()) + ")");
  }
}

// out = a with c_0 replaced by f(c_0_i, i); other polynomials copied.
template <class F>
void map_c0(const CKKSContext& ctx, const Ciphertext& a, Ciphertext& out, F&& f) {
  const size_t n = ctx.n(), lq = a.limb_count(), size = a.size(), tasks = size * lq;
  const double scale = a.scale();
  out.resize(n, size, a.level());
#pragma omp parallel for if (ring::detail::use_parallel(tasks, n))
  for (size_t t = 0; t < tasks; ++t) {
    const size_t p = t / lq, i = t % lq;
    if (p == 0) f(a.limb(0, i), out.limb(0, i), i);
    else copy_limb(a.limb(p, i), out.limb(p, i), n);
  }
  out.set_scale(scale);
  out.set_ntt_form(true);
}

}  // namespace

void Evaluator::add_plain(const Ciphertext& a, const Plaintext& p, Ciphertext& out) const {
  check(a, "add_plain");
  check_plain(*context_, p, a.level(), "add_plain");
  check_same_scale(a.scale(), p.scale(), "add_plain");
  const CKKSContext& ctx = *context_;
  map_c0(ctx, a, out, [&](const uint64_t* src, uint64_t* dst, size_t i) {
    ring::add_poly(src, p.limb(i), dst, ctx.n(), ctx.modulus(i));
  });
}

void Evaluator::sub_plain(const Ciphertext& a, const Plaintext& p, Ciphertext& out) const {
  check(a, "sub_plain");
  check_plain(*context_, p, a.level(), "sub_plain");
  check_same_scale(a.scale(), p.scale(), "sub_plain");
  const CKKSContext& ctx = *context_;
  map_c0(ctx, a, out, [&](const uint64_t* src, uint64_t* dst, size_t i) {
    ring::sub_poly(src, p.limb(i), dst, ctx.n(), ctx.modulus(i));
  });
}

void Evaluator::add_scalar(const Ciphertext& a, double value, Ciphertext& out) const {
  check(a, "add_scalar");
  const CKKSContext& ctx = *context_;
  uint64_t r[256];
  encode_scalar(ctx, value, a.scale(), a.level(), r);
  map_c0(ctx, a, out, [&](const uint64_t* src, uint64_t* dst, size_t i) {
    ring::add_scalar_poly(src, r[i], dst, ctx.n(), ctx.modulus(i));
  });
}

void Evaluator::add_scalar_packed(const Ciphertext& a, double value, Ciphertext& out) const {
  check(a, "add_scalar_packed");
  const CKKSContext& ctx = *context_;
  uint64_t r[256];
  encode_scalar(ctx, value, a.scale(), a.level(), r);
  const size_t half = ctx.n() / 2;
  map_c0(ctx, a, out, [&](const uint64_t* src, uint64_t* dst, size_t i) {
    // r·(1 + X^{N/2}) in the NTT domain: r(1 + I) on the first half, r(1 - I) on the second.
    const ring::Modulus& q = ctx.modulus(i);
    const uint64_t ri = ring::mul_mod(r[i], ctx.imag_unit(i), q);
    ring::add_scalar_poly(src, ring::add_mod(r[i], ri, q.value), dst, half, q);
    ring::add_scalar_poly(src + half, ring::sub_mod(r[i], ri, q.value), dst + half, half, q);
  });
}

// ---------------------------------------------------------------- products by constants

void Evaluator::multiply_plain(const Ciphertext& a, const Plaintext& p, Ciphertext& out) const {
  check(a, "multiply_plain");
  check_plain(*context_, p, a.level(), "multiply_plain");
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), lq = a.limb_count(), tasks = a.size() * lq;
  const double scale = a.scale() * p.scale();
  out.resize(n, a.size(), a.level());
#pragma omp parallel for if (ring::detail::use_parallel(tasks, n))
  for (size_t t = 0; t < tasks; ++t) {
    const size_t pi = t / lq, i = t % lq;
    ring::multiply_poly(a.limb(pi, i), p.limb(i), out.limb(pi, i), n, ctx.modulus(i));
  }
  out.set_scale(scale);
  out.set_ntt_form(true);
}

void Evaluator::multiply_scalar(const Ciphertext& a, double value, double scale,
                                Ciphertext& out) const {
  check(a, "multiply_scalar");
  if (!std::isfinite(scale) || scale <= 0) {
    throw std::invalid_argument("multiply_scalar: scale must be finite and positive");
  }
  const CKKSContext& ctx = *context_;
  uint64_t r[256];
  encode_scalar(ctx, value, scale, a.level(), r);
  const size_t n = ctx.n(), lq = a.limb_count(), tasks = a.size() * lq;
  const double out_scale = a.scale() * scale;
  out.resize(n, a.size(), a.level());
#pragma omp parallel for if (ring::detail::use_parallel(tasks, n))
  for (size_t t = 0; t < tasks; ++t) {
    const size_t p = t / lq, i = t % lq;
    ring::multiply_scalar_poly(a.limb(p, i), r[i], out.limb(p, i), n, ctx.modulus(i));
  }
  out.set_scale(out_scale);
  out.set_ntt_form(true);
}

void Evaluator::multiply_scalar_accumulate(std::span<const Ciphertext> inputs,
                                           std::span<const double> weights,
                                           double weight_scale, Ciphertext& out) const {
  std::vector<const Ciphertext*> ptrs(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) ptrs[k] = &inputs[k];
  multiply_scalar_accumulate(std::span<const Ciphertext* const>(ptrs), weights, weight_scale,
                             out);
}

void Evaluator::multiply_scalar_accumulate(std::span<const Ciphertext* const> inputs,
                                           std::span<const double> weights,
                                           double weight_scale, Ciphertext& out) const {
  const char* op = "multiply_scalar_accumulate";
  if (inputs.empty()) throw std::invalid_argument(std::string(op) + ": no inputs");
  if (inputs.size() != weights.size()) {
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(inputs.size()) +
                                " inputs but " + std::to_string(weights.size()) + " weights");
  }
  if (!std::isfinite(weight_scale) || weight_scale <= 0) {
    throw std::invalid_argument(std::string(op) + ": weight scale must be finite and positive");
  }
  const CKKSContext& ctx = *context_;
  const Ciphertext& ref = *inputs[0];
  check(ref, op);
  const size_t n = ctx.n(), level = ref.level(), lq = level + 1, size = ref.size();
  bool aliased = false;
  for (const Ciphertext* c : inputs) {
    check(*c, op);
    check_same_level(*c, level, op);
    check_same_scale(c->scale(), ref.scale(), op);
    if (c->size() != size) {
      throw std::invalid_argument(std::string(op) + ": size mismatch (" +
                                  std::to_string(c->size()) + " vs " + std::to_string(size) + ")");
    }
    aliased |= c == &out;
  }
  // Encode the non-zero weights: residues[i * count + k].
  std::vector<const uint64_t*> bases;
  std::vector<uint64_t> residues;
  std::vector<uint64_t> r(lq);
  bases.reserve(inputs.size());
  std::vector<uint64_t> packed;
  packed.reserve(inputs.size() * lq);
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (weights[k] == 0.0) continue;
    encode_scalar(ctx, weights[k], weight_scale, level, r.data());
    if (std::all_of(r.begin(), r.end(), [](uint64_t v) { return v == 0; })) continue;
    bases.push_back(inputs[k]->data().data());
    packed.insert(packed.end(), r.begin(), r.end());
  }
  const size_t count = bases.size();
  residues.resize(lq * count);
  for (size_t k = 0; k < count; ++k) {
    for (size_t i = 0; i < lq; ++i) residues[i * count + k] = packed[k * lq + i];
  }
  const double out_scale = ref.scale() * weight_scale;
  Ciphertext tmp;
  Ciphertext& dst = aliased ? tmp : out;
  dst.resize(n, size, level);
  const size_t tasks = size * lq;
#pragma omp parallel if (ring::detail::use_parallel(tasks, n * count))
  {
    std::vector<const uint64_t*> in(count);
#pragma omp for
    for (size_t t = 0; t < tasks; ++t) {
      const size_t i = t % lq;
      const size_t offset = t * n;  // (p * lq + i) * n, identical in every input
      for (size_t k = 0; k < count; ++k) in[k] = bases[k] + offset;
      ring::dot_scalar_poly(in.data(), residues.data() + i * count, count,
                            dst.data().data() + offset, n, ctx.modulus(i));
    }
  }
  dst.set_scale(out_scale);
  dst.set_ntt_form(true);
  if (aliased) out = std::move(tmp);
}

void Evaluator::multiply_by_i(const Ciphertext& a, Ciphertext& out) const {
  check(a, "multiply_by_i");
  const CKKSContext& ctx = *context_;
  const size_t n = ctx.n(), half = n / 2, lq = a.limb_count(), tasks = a.size() * lq;
  const double scale = a.scale();
  out.resize(n, a.size(), a.level());
#pragma omp parallel for if (ring::detail::use_parallel(tasks, n))
  for (size_t t = 0; t < tasks; ++t) {
    const size_t p = t / lq, i = t % lq;
    const ring::Modulus& q = ctx.modulus(i);
    const uint64_t im = ctx.imag_unit(i);
    ring::multiply_scalar_poly(a.limb(p, i), im, out.limb(p, i), half, q);
    ring::multiply_scalar_poly(a.limb(p, i) + half, q.value - im, out.limb(p, i) + half, half, q);
  }
  out.set_scale(scale);
  out.set_ntt_form(true);
}

// ---------------------------------------------------------------- levels and NTT

void Evaluator::mod_switch(const Ciphertext& a, Ciphertext& out) const {
  check(a, "mod_switch");
  if (a.level() == 0) throw std::invalid_argument("mod_switch: ciphertext is at level 0");
  if (&a == &out) {
    out.drop_limbs(1);
    return;
  }
  const size_t n = context_->n(), level = a.level() - 1;
  out.resize(n, a.size(), level);
  for (size_t p = 0; p < a.size(); ++p) {
    std::memcpy(out.poly(p), a.poly(p), (level + 1) * n * sizeof(uint64_t));
  }
  out.set_scale(a.scale());
  out.set_ntt_form(true);
}

void Evaluator::mod_switch_to_inplace(Ciphertext& a, size_t level) const {
  check(a, "mod_switch_to");
  if (level > a.level()) {
    throw std::invalid_argument("mod_switch_to: target level " + std::to_string(level) +
                                " is above the ciphertext level " + std::to_string(a.level()));
  }
  a.drop_limbs(a.level() - level);
}

void Evaluator::mod_switch_to_inplace(Plaintext& p, size_t level) const {
  if (p.n() != context_->n() || p.data().size() != p.n() * p.limb_count()) {
    throw std::invalid_argument("mod_switch_to: plaintext does not match the context");
  }
  if (level > p.level()) {
    throw std::invalid_argument("mod_switch_to: target level " + std::to_string(level) +
                                " is above the plaintext level " + std::to_string(p.level()));
  }
  p.resize(p.n(), level);
}

namespace {

void check_shape_any_form(const CKKSContext& ctx, const Ciphertext& a, const char* op) {
  if (a.is_compact() || a.n() != ctx.n() || a.level() > ctx.max_level() ||
      a.data().size() != a.size() * a.limb_count() * a.n()) {
    throw std::invalid_argument(std::string(op) + ": ciphertext does not match the context");
  }
}

}  // namespace

void Evaluator::transform_to_ntt_inplace(Ciphertext& a) const {
  check_shape_any_form(*context_, a, "transform_to_ntt");
  if (a.is_ntt_form()) throw std::invalid_argument("transform_to_ntt: already in NTT form");
  const size_t lq = a.limb_count(), tasks = a.size() * lq;
#pragma omp parallel for if (ring::detail::use_parallel(tasks, context_->n() * 16))
  for (size_t t = 0; t < tasks; ++t) context_->ntt(t % lq).forward(a.limb(t / lq, t % lq));
  a.set_ntt_form(true);
}

void Evaluator::transform_from_ntt_inplace(Ciphertext& a) const {
  check_shape_any_form(*context_, a, "transform_from_ntt");
  if (!a.is_ntt_form()) throw std::invalid_argument("transform_from_ntt: not in NTT form");
  const size_t lq = a.limb_count(), tasks = a.size() * lq;
#pragma omp parallel for if (ring::detail::use_parallel(tasks, context_->n() * 16))
  for (size_t t = 0; t < tasks; ++t) context_->ntt(t % lq).inverse(a.limb(t / lq, t % lq));
  a.set_ntt_form(false);
}

}  // namespace heinfer::ckks
