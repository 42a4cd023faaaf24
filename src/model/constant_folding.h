// Pass: constant folding.
#pragma once

#include "model/graph.h"
#include "model/onnx_tensor.h"

namespace heinfer::model {

/// Replaces every node whose inputs are all constants (e.g. Reshape of a shape constant,
/// Transpose of a weight, arithmetic on constants) by the constant it computes
/// (model/constant_eval.h), in topological order so chains fold completely. Runs on the
/// raw imported graph, before shape inference. Returns the number of nodes folded.
/// Throws ModelError if such a node cannot be evaluated or a used extra output (e.g. a
/// Dropout mask) would be lost.
int fold_constants(Graph& g);

/// Evaluates node n at load time (evaluate_constant_node, or evaluate_shape_of_activation
/// when `shape_of_activation`) and makes its first output that constant (shape, dtype,
/// values, batch dependence). Charges its constant inputs and its output to
/// g.load_time_elements; throws ModelError, before evaluating when the inputs already
/// exceed it, when the load's total passes kMaxLoadTimeElements.
void fold_node(Graph& g, const Node& n, bool shape_of_activation = false);

}  // namespace heinfer::model
