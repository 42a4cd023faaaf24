// An encoded CKKS message: one polynomial over q_0..q_l in the NTT domain.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ring/aligned_memory.h"

namespace heinfer::ckks {

/// Layout: data()[i * n + k] = coefficient (NTT slot) k of limb i, i = 0..level.
/// The value represented is m / scale where m is the integer polynomial.
class Plaintext {
 public:
  Plaintext() = default;

  /// Sets the shape (n coefficients, level + 1 limbs); contents are unspecified.
  void resize(size_t n, size_t level) {
    n_ = n;
    level_ = level;
    data_.resize(n * (level + 1));
  }

  size_t n() const { return n_; }
  size_t level() const { return level_; }
  size_t limb_count() const { return level_ + 1; }
  double scale() const { return scale_; }
  void set_scale(double scale) { scale_ = scale; }

  uint64_t* limb(size_t i) { return data_.data() + i * n_; }
  const uint64_t* limb(size_t i) const { return data_.data() + i * n_; }
  ring::LimbVector& data() { return data_; }
  const ring::LimbVector& data() const { return data_; }

 private:
  size_t n_ = 0, level_ = 0;
  double scale_ = 1.0;
  ring::LimbVector data_;
};

}  // namespace heinfer::ckks
