// Encrypted activations under batch-axis packing: one CKKS ciphertext per per-sample
// tensor element, its slots holding that element for every sample of the batch
// (nGraph-HE2, Boemer et al., WAHC 2019, "batch-axis plaintext packing").
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "ckks/ciphertext.h"
#include "ckks/packing.h"
#include "model/shape.h"

namespace heinfer::runtime {

using CiphertextPtr = std::shared_ptr<const ckks::Ciphertext>;

/// An encrypted activation tensor. cts[e] encrypts element e (row-major over `shape`)
/// for all samples; nullptr means the exact constant 0 (e.g. zero padding, all-zero
/// weight rows). Ciphertexts are shared (data movement copies pointers, never data).
///
/// Pending factors: the true value of element e is decode(cts[e]) · factor[e]
/// (factor empty = all 1). Client-aided layers return masked results R·y; the server
/// records factor 1/R instead of spending a level, and the next linear layer folds the
/// factor into its weights (free unmasking).
///
/// All non-null ciphertexts of one tensor share `level`; `scale` is their common
/// CKKS scale (Δ after every linear layer by the weight-scale trick).
struct EncryptedTensor {
  model::Shape shape;              ///< per-sample shape
  std::vector<CiphertextPtr> cts;  ///< numel(shape) entries
  std::vector<double> factor;      ///< empty, or numel(shape) pending factors
  std::size_t level = 0;
  double scale = 1.0;

  std::int64_t elements() const { return static_cast<std::int64_t>(cts.size()); }
  double factor_at(std::int64_t e) const {
    return factor.empty() ? 1.0 : factor[static_cast<std::size_t>(e)];
  }
  bool has_factors() const;  ///< some factor differs from 1
};

}  // namespace heinfer::runtime
