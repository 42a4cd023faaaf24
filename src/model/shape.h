// Tensor shapes (dimension vectors) and the index arithmetic on them.
//
// Convention of the whole model layer: an *activation* tensor's shape is its
// per-sample shape (the batch dimension, ONNX dim 0, is excluded, e.g. [C, H, W]);
// a *constant* tensor's shape is its full ONNX shape. Layouts are row-major (C order).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace heinfer::model {

using Shape = std::vector<std::int64_t>;

/// Largest element count accepted for one tensor (2^31, i.e. 16 GiB of doubles per sample);
/// bigger shapes are a ModelError rather than a failed allocation.
inline constexpr std::int64_t kMaxElements = std::int64_t{1} << 31;

/// Integer values of a tensor held as doubles (dims, indices, pads, axes): each value
/// truncated, saturating at ±2^62 (INT64_MAX, which exporters write for "to the end",
/// arrives as 2^63 and has no int64 value). Throws ModelError naming `context` for NaN.
std::vector<std::int64_t> to_int64s(std::span<const double> values, const std::string& context);

/// Product of the dims (1 for a scalar []). Throws ModelError on a negative dim or when
/// the product exceeds kMaxElements.
std::int64_t numel(std::span<const std::int64_t> dims);

/// "[2, 3, 4]".
std::string to_string(std::span<const std::int64_t> dims);

/// Row-major strides: strides[i] = prod(dims[i+1:]).
Shape row_major_strides(std::span<const std::int64_t> dims);

/// Multidirectional (numpy) broadcasting of two shapes, ONNX "Broadcasting in ONNX".
/// Throws ModelError (prefixed with `context`) when the shapes are incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const std::string& context);

/// Strides to read an operand of shape `in` (right-aligned, broadcastable to `out`) while
/// iterating over `out` in row-major order: result has out.size() entries, 0 for
/// broadcast (size-1 or missing) dims.
Shape broadcast_strides(const Shape& in, const Shape& out);

}  // namespace heinfer::model
