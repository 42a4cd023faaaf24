// Per-operator validation, normalization and per-sample shape inference.
#pragma once

#include "model/graph.h"

namespace heinfer::model {

/// For every node whose params are still std::monostate (in topological order): checks the
/// op's attributes (unknown attributes and unsupported values are errors), checks which
/// inputs must be constants, sets the output tensor's per-sample shape, drops unused
/// optional outputs, and fills Node::params (see op_params.h), rewriting constant operands
/// into the kernel layout (Gemm/MatMul weights to [n, k], BatchNormalization to
/// scale/shift). The batch must stay ONNX dim 0 through every op: an op that would move or
/// mix it (e.g. Concat/Softmax over axis 0, Reshape changing dim 0, a constant with a
/// non-1 dim 0 in a broadcast) is a ModelError. Expects constants to be folded already
/// (model/constant_folding.h). Also rejects constant graph outputs.
void infer_shapes(Graph& g);

}  // namespace heinfer::model
