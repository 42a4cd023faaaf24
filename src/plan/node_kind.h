// What the encrypted runtime does with each node of a prepared graph: the step kind that
// runs it (linear, polynomial, client round, data movement) and whether it can run on
// bands of rows.
#pragma once

#include <vector>

#include "model/graph.h"

namespace heinfer::plan {

enum class NodeKind {
  DataMovement,  ///< Flatten/Reshape/Identity/Dropout/Transpose/Concat/Pad: shares ciphertexts
  Linear,        ///< Conv, Gemm, MatMul, BN, Add/Sub/Mul/Div, pools with averaging
  Square,        ///< Pow(x, 2), Mul(x, x), Mul(a, b) of activations: ciphertext × ciphertext
  FusedRelu,     ///< Relu whose only reader is a MaxPool: evaluated in the MaxPool round
  Relu,          ///< client round, one window per element
  MaxPool,       ///< client round, one window per output
  Clip,          ///< client round(s) per finite bound, recombined on the server
  LeakyRelu,     ///< client round, recombined with x on the server
  FunctionRound, ///< unmasked client round: Sigmoid, Tanh, ... (model/activation_fn.h)
  FinalSoftmax,  ///< Softmax/LogSoftmax producing a graph output: applied by the client
};

/// Whether the kind is a client round (Relu, MaxPool, Clip, LeakyRelu, FunctionRound).
bool is_round(NodeKind k);

/// Ops that only rearrange their one input's elements (Flatten, Reshape, Transpose,
/// Squeeze, Unsqueeze, Identity, Dropout): no element is computed or added, so whatever
/// holds for the input's elements holds for the output's.
bool is_relayout(model::OpType op);

/// The kind of a prepared node. Throws model::ModelError for a Softmax/LogSoftmax that is
/// not final (its output must be a graph output read by no other node) and for nodes that
/// prepare_graph removes (Pow, Constant).
NodeKind node_kind(const model::Graph& g, const model::Node& n);

/// node_kind of every node, in graph order.
std::vector<NodeKind> node_kinds(const model::Graph& g);

}  // namespace heinfer::plan
