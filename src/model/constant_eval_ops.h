// Internal to the constant evaluator: one function per operator family, on operand values.
#pragma once

#include "model/op_args.h"

namespace heinfer::model::detail {

/// Element-wise ops: Add, Sub, Mul, Div, Pow, Equal, Less, Greater, Where (numpy
/// broadcasting; opset < 7 legacy broadcasting), Not, Neg, Sqrt, Floor, Ceil, Cast, Relu,
/// LeakyRelu, Clip and the smooth activations. Throws ModelError for other ops.
TensorValue eval_elementwise(const Node& n, const Args& in, std::int64_t opset);

/// Shape and data-movement ops: Identity, Dropout, Reshape, Flatten, Transpose, Concat,
/// Gather, Slice, Squeeze, Unsqueeze, Expand, Pad, Shape, Size, ConstantOfShape, Range,
/// ReduceMean. Throws ModelError for other ops.
TensorValue eval_layout(const Node& n, const Args& in, std::int64_t opset);

/// Whether eval_layout handles op.
bool is_layout_op(OpType op);

}  // namespace heinfer::model::detail
