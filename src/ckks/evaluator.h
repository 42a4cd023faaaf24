// Homomorphic operations on CKKS ciphertexts (NTT form throughout).
//
// Conventions:
//  - `out` may alias an input unless stated otherwise; outputs reuse their capacity.
//  - Operands must be at the same level (else std::invalid_argument naming both
//    levels) and, for additions, at the same scale up to a relative tolerance of 1e-9
//    (else std::invalid_argument naming both scales). Products multiply the scales;
//    rescale divides by the dropped prime.
//  - Inputs must be expanded (not compact), in NTT form and match the context; else
//    std::invalid_argument.
//  - Work is parallelised over RNS limbs with OpenMP only when not already inside a
//    parallel region, so callers may parallelise over ciphertexts instead.
//  - Thread safety: all methods are const and may be called concurrently.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/context.h"
#include "ckks/keys.h"
#include "ckks/plaintext.h"

namespace heinfer::ckks {

class Evaluator {
 public:
  explicit Evaluator(ContextPtr context);
  const CKKSContext& context() const { return *context_; }

  // ---- additive (sizes may differ: the result has the larger size) ----
  void add(const Ciphertext& a, const Ciphertext& b, Ciphertext& out) const;
  void add_inplace(Ciphertext& a, const Ciphertext& b) const { add(a, b, a); }
  void sub(const Ciphertext& a, const Ciphertext& b, Ciphertext& out) const;
  void sub_inplace(Ciphertext& a, const Ciphertext& b) const { sub(a, b, a); }
  void negate(const Ciphertext& a, Ciphertext& out) const;
  void negate_inplace(Ciphertext& a) const { negate(a, a); }
  /// Plaintext at the same level and scale.
  void add_plain(const Ciphertext& a, const Plaintext& p, Ciphertext& out) const;
  void add_plain_inplace(Ciphertext& a, const Plaintext& p) const { add_plain(a, p, a); }
  void sub_plain(const Ciphertext& a, const Plaintext& p, Ciphertext& out) const;
  void sub_plain_inplace(Ciphertext& a, const Plaintext& p) const { sub_plain(a, p, a); }
  /// Adds `value` to the real part of every slot (encoded at a's scale).
  void add_scalar(const Ciphertext& a, double value, Ciphertext& out) const;
  void add_scalar_inplace(Ciphertext& a, double value) const { add_scalar(a, value, a); }
  void sub_scalar_inplace(Ciphertext& a, double value) const { add_scalar(a, -value, a); }
  /// Complex packing: adds `value` to all N packed reals, i.e. value·(1 + i) to every
  /// slot (the constant polynomial round(value·Δ)·(1 + X^{N/2})).
  void add_scalar_packed(const Ciphertext& a, double value, Ciphertext& out) const;
  void add_scalar_packed_inplace(Ciphertext& a, double value) const {
    add_scalar_packed(a, value, a);
  }

  // ---- products by constants ----
  /// out = a · p; scale = a.scale · p.scale; same level.
  void multiply_plain(const Ciphertext& a, const Plaintext& p, Ciphertext& out) const;
  void multiply_plain_inplace(Ciphertext& a, const Plaintext& p) const {
    multiply_plain(a, p, a);
  }
  /// out = a · round(value · scale) (scalar encoding, scalar_encoding.h);
  /// out.scale = a.scale · scale.
  void multiply_scalar(const Ciphertext& a, double value, double scale, Ciphertext& out) const;
  void multiply_scalar_inplace(Ciphertext& a, double value, double scale) const {
    multiply_scalar(a, value, scale, a);
  }
  /// The linear-layer kernel: out = Σ_k inputs[k] · round(weights[k] · weight_scale),
  /// one modular reduction per output coefficient (dot_scalar_poly); zero weights (after
  /// rounding) are skipped. All inputs share level, size and scale (tolerance 1e-9);
  /// out.scale = input scale · weight_scale. out may alias an input. Throws
  /// std::invalid_argument if inputs is empty, counts differ, or shapes mismatch.
  /// Tip: weight_scale = target · q_l / input scale (q_l = context().modulus(level)) makes
  /// the following rescale land exactly on `target`.
  void multiply_scalar_accumulate(std::span<const Ciphertext* const> inputs,
                                  std::span<const double> weights, double weight_scale,
                                  Ciphertext& out) const;
  void multiply_scalar_accumulate(std::span<const Ciphertext> inputs,
                                  std::span<const double> weights, double weight_scale,
                                  Ciphertext& out) const;
  /// Multiplies every slot by i (the monomial X^{N/2}; exact, scale unchanged). In the
  /// complex packing this maps (α, β) to (-β, α).
  void multiply_by_i(const Ciphertext& a, Ciphertext& out) const;

  // ---- ciphertext products ----
  /// Tensor product of two size-2 ciphertexts: size 3, scale = a.scale · b.scale.
  void multiply(const Ciphertext& a, const Ciphertext& b, Ciphertext& out) const;
  void multiply_inplace(Ciphertext& a, const Ciphertext& b) const { multiply(a, b, a); }
  void square(const Ciphertext& a, Ciphertext& out) const { multiply(a, a, out); }
  /// Size 3 -> 2 by key switching c_2 (s^2 -> s). Size 2 is copied unchanged.
  void relinearize(const Ciphertext& a, const RelinKeys& rk, Ciphertext& out) const;
  void relinearize_inplace(Ciphertext& a, const RelinKeys& rk) const { relinearize(a, rk, a); }
  /// multiply + relinearize without materialising the size-3 ciphertext.
  void multiply_relinearize(const Ciphertext& a, const Ciphertext& b, const RelinKeys& rk,
                            Ciphertext& out) const;
  /// Complex packing: elementwise product of all N packed reals, (α + iβ)(γ + iδ) ->
  /// αγ + iβδ, as ((a + ā)(b + b̄) - i(a - ā)(b - b̄)) / 4 with the 1/4 folded into the
  /// scale (out.scale = 4 · a.scale · b.scale). Needs the conjugation Galois key; costs
  /// one conjugation per distinct input, two tensor products and one relinearization.
  void multiply_packed(const Ciphertext& a, const Ciphertext& b, const RelinKeys& rk,
                       const GaloisKeys& gk, Ciphertext& out) const;
  /// The same without the relinearization: out has size 3 (decrypts under 1, s, s²), for
  /// callers that relinearize later, after summing products (lazy relinearization).
  void multiply_packed(const Ciphertext& a, const Ciphertext& b, const GaloisKeys& gk, Ciphertext& out) const;

  // ---- levels ----
  /// Divides by the last prime q_l with rounding: level - 1, scale / q_l. Throws
  /// std::invalid_argument at level 0.
  void rescale(const Ciphertext& a, Ciphertext& out) const;
  void rescale_inplace(Ciphertext& a) const { rescale(a, a); }
  /// Drops the last limb without dividing (level - 1, scale unchanged).
  void mod_switch(const Ciphertext& a, Ciphertext& out) const;
  void mod_switch_inplace(Ciphertext& a) const { mod_switch(a, a); }
  /// Drops limbs down to `level` (<= current level).
  void mod_switch_to_inplace(Ciphertext& a, size_t level) const;
  void mod_switch_to_inplace(Plaintext& p, size_t level) const;

  // ---- automorphisms ----
  /// Left rotation of the N/2 slots by `steps` (negative: right), Galois element
  /// 5^steps mod 2N; needs that Galois key (std::invalid_argument otherwise).
  void rotate(const Ciphertext& a, int steps, const GaloisKeys& gk, Ciphertext& out) const;
  void rotate_inplace(Ciphertext& a, int steps, const GaloisKeys& gk) const {
    rotate(a, steps, gk, a);
  }
  /// Complex conjugation of every slot (element 2N - 1).
  void conjugate(const Ciphertext& a, const GaloisKeys& gk, Ciphertext& out) const;
  /// X -> X^elt applied to a size-2 ciphertext (NTT-domain index permutation), then key
  /// switching σ(s) -> s.
  void apply_galois(const Ciphertext& a, uint32_t elt, const GaloisKeys& gk,
                    Ciphertext& out) const;

  // ---- representation ----
  void transform_to_ntt_inplace(Ciphertext& a) const;
  void transform_from_ntt_inplace(Ciphertext& a) const;

 private:
  void check(const Ciphertext& a, const char* op) const;
  void check_same_level(const Ciphertext& a, size_t level, const char* op) const;
  void check_same_scale(double a, double b, const char* op) const;

  ContextPtr context_;
};

}  // namespace heinfer::ckks
