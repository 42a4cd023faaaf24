// Evaluation of a node whose inputs are all constants (used by constant folding).
#pragma once

#include "model/graph.h"
#include "model/onnx_tensor.h"

namespace heinfer::model {

/// Computes the (first) output of `node` on full-shape constant inputs with ONNX semantics.
/// Foldable ops: Identity, Dropout, Reshape, Flatten, Transpose, Concat, Add, Sub, Mul, Div,
/// Pow (numpy or opset-6 broadcasting; int64 Div truncates), Relu, LeakyRelu, Clip.
/// Throws ModelError (naming the node) for any other op or invalid inputs.
TensorValue evaluate_constant_node(const Graph& g, const Node& node);

}  // namespace heinfer::model
