// CKKS encoder: vectors of reals / complex numbers <-> plaintext polynomials.
//
// Slot j (j < N/2) is the evaluation m(ζ^(5^j)) / scale of the plaintext polynomial m
// at a primitive 2N-th root ζ = exp(iπ/N) (canonical embedding, Cheon–Kim–Kim–Song,
// ASIACRYPT 2017), computed with the special FFT (special_fft.h). A left rotation of
// the slots by r is the Galois automorphism X -> X^(5^r); conjugation is X -> X^(2N-1).
//
// Packings:
//  - real:     N/2 reals, slot j = values[j] (imaginary parts 0);
//  - complex:  N/2 complex values, slot j = values[j];
//  - packed:   N reals, slot j = values[j] + i·values[j + N/2]. Additions, real
//              scalar products and multiply_scalar_accumulate act elementwise on all N
//              reals; elementwise products need Evaluator::multiply_packed.
// Plaintexts are produced in the NTT domain at a given level and scale.
#pragma once

#include <complex>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "ckks/context.h"
#include "ckks/plaintext.h"
#include "ckks/special_fft.h"

namespace heinfer::ckks {

class CKKSEncoder {
 public:
  explicit CKKSEncoder(ContextPtr context);

  size_t slot_count() const { return context_->n() / 2; }

  /// Real packing: values.size() <= N/2 (missing slots are 0).
  /// Throws std::invalid_argument on too many values, level > L, a non-finite or
  /// non-positive scale, a non-finite value, or a scaled coefficient >= Q_level/2.
  void encode(std::span<const double> values, double scale, size_t level, Plaintext& out) const;
  /// Complex slots: values.size() <= N/2.
  void encode(std::span<const std::complex<double>> values, double scale, size_t level,
              Plaintext& out) const;
  /// Complex packing of up to N reals: slot j = values[j] + i·values[j + N/2].
  void encode_packed(std::span<const double> values, double scale, size_t level,
                     Plaintext& out) const;
  /// Constant polynomial round(value · scale) in every slot (real part); see
  /// scalar_encoding.h for the residue-only form used by the evaluator.
  void encode_scalar(double value, double scale, size_t level, Plaintext& out) const;

  /// N/2 real parts of the slots.
  void decode(const Plaintext& plain, std::vector<double>& out) const;
  /// N/2 complex slots.
  void decode(const Plaintext& plain, std::vector<std::complex<double>>& out) const;
  /// N reals of the complex packing: out[j] = Re slot j, out[j + N/2] = Im slot j.
  void decode_packed(const Plaintext& plain, std::vector<double>& out) const;
  /// The N polynomial coefficients as exact centered integers (multiprecision CRT over
  /// all limbs) divided by the scale, rounded to double. Useful for noise measurement.
  void decode_coefficients(const Plaintext& plain, std::vector<double>& out) const;

 private:
  void encode_slots(std::vector<std::complex<double>>& slots, double scale, size_t level,
                    Plaintext& out) const;
  void decode_slots(const Plaintext& plain, std::vector<std::complex<double>>& slots) const;

  ContextPtr context_;
  SpecialFFT fft_;
};

}  // namespace heinfer::ckks
