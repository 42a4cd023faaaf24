// Plaintext activations in the executor's element-major, batch-innermost layout.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/shape.h"

namespace heinfer::runtime {

/// A batch of activations: data[e * batch + b] is element e (row-major over the per-sample
/// `shape`) of sample b. This mirrors batch-axis packing, where element e is one
/// ciphertext whose slot b holds sample b, so kernels written over elements apply to both.
struct PlainTensor {
  model::Shape shape;      ///< per-sample shape (batch excluded)
  std::int64_t batch = 0;  ///< number of samples
  std::vector<double> data;

  /// Per-sample element count.
  std::int64_t elements() const { return batch ? static_cast<std::int64_t>(data.size()) / batch : 0; }
  /// The batch vector of element e (`batch` values, one per sample).
  std::span<double> element(std::int64_t e) {
    return {data.data() + e * batch, static_cast<std::size_t>(batch)};
  }
  std::span<const double> element(std::int64_t e) const {
    return {data.data() + e * batch, static_cast<std::size_t>(batch)};
  }
};

/// A zero-filled tensor. Throws model::ModelError if the shape is too large.
PlainTensor make_plain_tensor(const model::Shape& shape, std::int64_t batch);

/// Converts samples stored batch-major (x[b * E + e], e.g. an NCHW array) into the
/// element-major layout. x.size() must be batch * numel(shape) (else std::invalid_argument).
PlainTensor from_batch_major(std::span<const double> x, std::int64_t batch, const model::Shape& shape);
PlainTensor from_batch_major(std::span<const float> x, std::int64_t batch, const model::Shape& shape);

/// The inverse: batch-major values (y[b * E + e]).
std::vector<double> to_batch_major(const PlainTensor& t);

}  // namespace heinfer::runtime
