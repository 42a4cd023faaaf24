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

/// Makes node n's first output the constant `v` (shape, dtype, values, batch dependence).
void store_constant_output(Graph& g, const Node& n, TensorValue v);

}  // namespace heinfer::model
