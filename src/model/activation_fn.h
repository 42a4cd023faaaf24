// The element-wise non-linear functions beyond ReLU (activations and the few unary math
// ops models apply to activations): one definition of each, used by the constant
// evaluator, the plaintext kernels and the client's rounds.
#pragma once

#include "model/graph.h"
#include "model/op_params.h"

namespace heinfer::model {

/// Whether op is one of Sigmoid, Tanh, HardSigmoid, HardSwish, Softplus, Erf, Exp, Log,
/// Sqrt, Floor, Ceil.
bool is_elementwise_function(OpType op);

/// The node's normalized parameters (HardSigmoid: alpha default 0.2, beta 0.5; HardSwish:
/// 1/6 and 1/2). Throws ModelError on an unknown attribute.
ActivationParams activation_params(const Node& node);

/// f(x) as ONNX defines it (opset 13/14): Sigmoid 1/(1+e^-x), Tanh, HardSigmoid
/// max(0, min(1, alpha x + beta)), HardSwish x * HardSigmoid(x), Softplus log(1+e^x)
/// (computed without overflow), Erf, Exp, Log (NaN below 0, -inf at 0), Sqrt, Floor, Ceil.
double activation_value(OpType op, const ActivationParams& p, double x);

}  // namespace heinfer::model
