// Decoding of the index-like operands of data-movement ops (axes, starts/ends, pads, ...),
// from attributes (older opsets) or constant inputs: one place for each op's argument rules,
// shared by the constant evaluator and shape inference.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "model/element_map.h"
#include "model/graph.h"
#include "model/onnx_tensor.h"

namespace heinfer::model::detail {

/// Operand values parallel to node.inputs; nullptr for an omitted input or one whose values
/// are not needed (the data operand).
using Args = std::vector<const TensorValue*>;

/// A graph tensor's values as a TensorValue (a copy).
TensorValue value_of(const Tensor& t);

/// Input i as a list of integers (nullopt when omitted). Throws ModelError naming `what`
/// when it is not a constant integer tensor of rank <= 1 or depends on the batch size.
std::optional<std::vector<std::int64_t>> int_list(const Node& n, const Args& args, std::size_t i,
                                                  const char* what);


struct SliceArgs {
  std::vector<std::int64_t> starts, ends, axes, steps;  ///< axes normalized and distinct
};
/// Slice-1 (attributes) or Slice-10/11/13 (inputs 1-4) of a tensor of rank `rank`.
SliceArgs slice_args(const Node& n, const Args& args, std::int64_t rank, std::int64_t opset);

/// Sorted normalized axes of Squeeze (`rank` = input rank; all size-1 axes of `in` when
/// none are given) or Unsqueeze (normalized against the output rank); attribute before opset 13, input 1
/// after. Throws on duplicates or (Squeeze) an axis whose size is not 1.
std::vector<std::int64_t> squeeze_axes(const Node& n, const Args& args, const Shape& in,
                                       std::int64_t opset);
std::vector<std::int64_t> unsqueeze_axes(const Node& n, const Args& args, std::int64_t in_rank,
                                         std::int64_t opset);
/// The shape after inserting size-1 axes at `axes` (sorted, normalized to the output rank).
Shape unsqueezed(const Shape& in, const std::vector<std::int64_t>& axes);

struct PadArgs {
  Shape begin, end;
  PadMode mode = PadMode::Constant;
  double value = 0.0;
};
/// Pad-2 (attributes) or Pad-11/13 (inputs 1, 2) for a tensor of rank `rank`.
PadArgs pad_args(const Node& n, const Args& args, std::size_t rank, std::int64_t opset);

/// The element type a Cast produces ("to"); ModelError for types other than
/// float/double/integers/bool.
DataType cast_target(const Node& n);

/// ReduceMean-13 axes (attribute; all axes when absent), normalized and sorted, and keepdims.
std::vector<std::int64_t> reduce_axes(const Node& n, std::int64_t rank, bool& keepdims);

}  // namespace heinfer::model::detail
