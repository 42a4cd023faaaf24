// Load-time evaluation of nodes whose inputs are all known: constants, and shapes of
// activations with the batch size N kept symbolic (Tensor::batch_coeff).
#pragma once

#include "model/graph.h"
#include "model/onnx_tensor.h"

namespace heinfer::model {

/// Computes the (first) output of `node` from its known inputs with ONNX semantics
/// (opset g.opset). Element-wise ops (arithmetic, comparisons, Where, Cast, Not, Neg, Sqrt,
/// Floor, Ceil, Relu/LeakyRelu/Clip and the smooth activations) and shape/data-movement ops
/// (Identity, Dropout, Reshape, Flatten, Transpose, Concat, Gather, Slice, Squeeze,
/// Unsqueeze, Expand, Pad, Shape, Size, ConstantOfShape, Range, ReduceMean).
/// Values that depend on N (batch_coeff) pass through the ops that are linear in them
/// (data movement, Add, Sub, Neg, Cast to an integer, Where's branches, Mul by a known
/// integer, Div when exact); anything else that would depend on N is a ModelError.
/// Throws ModelError (naming the node) for any other op or invalid inputs.
TensorValue evaluate_constant_node(const Graph& g, const Node& node);

/// Shape (or Size) of the activation input of `node`: [N, per-sample dims...] sliced by
/// start/end (Size: N * numel), with N symbolic. Throws ModelError for other ops.
TensorValue evaluate_shape_of_activation(const Graph& g, const Node& node);

}  // namespace heinfer::model
