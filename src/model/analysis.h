// Analysis of a shape-inferred graph for homomorphic evaluation: the class of every op,
// whether its weights need a rescale, the segments between client-aided layers, and
// multiply-accumulate counts. The levels and depths of encrypted execution are the plan's
// (plan/level_rules.h), not this file's.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "model/graph.h"

namespace heinfer::model {

/// How an op is evaluated on batch-packed ciphertexts.
enum class OpClass {
  Linear,      ///< plaintext-weight linear map or pure data movement (server, encrypted)
  Polynomial,  ///< ciphertext-ciphertext product: square (server, encrypted, depth 1)
  ClientAided  ///< non-polynomial: Relu, Clip, LeakyRelu, MaxPool, Softmax, LogSoftmax
};

std::string_view op_class_name(OpClass c);  ///< "linear", "polynomial", "client-aided"

/// Class of a shape-inferred node. Linear: Conv, Gemm, MatMul, Add/Sub/Mul/Div with a
/// constant, Add/Sub of two tensors, BatchNormalization, AveragePool, GlobalAveragePool,
/// Pad, Flatten, Reshape, Transpose, Concat, Identity, Dropout, Resize/Upsample, the element
/// maps. Polynomial: Pow(x, 2), Mul(x, x), Mul of two activations.
OpClass classify(const Node& node);

/// Rescale levels the node consumes: 1 for a square, 1 for a linear op that multiplies by
/// some weight outside {-1, 0, 1} (Conv/Gemm/MatMul weights, Mul/Div constants, BN scale,
/// pooling window 1/size when the window has more than one element, linear/cubic Resize
/// weights); 0 otherwise
/// (additions, data movement, client-aided ops).
int levels(const Graph& g, const Node& node);

/// Multiply-accumulates per sample (output elements times the terms each sums; one per
/// output element for element-wise products and squares; 0 for data movement, additions
/// and client-aided ops).
std::int64_t macs(const Graph& g, const Node& node);

struct NodeAnalysis {
  OpClass op_class = OpClass::Linear;
  int levels = 0;    ///< levels(g, node)
  int segment = -1;  ///< index into GraphAnalysis::segments; -1 for client-aided nodes
  std::int64_t macs = 0;
};

/// A maximal connected group of linear/polynomial nodes between client-aided layers.
struct Segment {
  std::vector<int> nodes;  ///< node indices, topological order
};

struct GraphAnalysis {
  std::vector<NodeAnalysis> nodes;  ///< parallel to Graph::nodes
  std::vector<Segment> segments;    ///< in order of their first node
};

/// Analyzes a graph after shape inference (and the folding passes).
GraphAnalysis analyze(const Graph& g);

}  // namespace heinfer::model
