// A small hand-built graph that exercises every level rule at once (weights that rescale
// and that do not, squares, a Relu round, a residual Add reading pending factors, a final
// Softmax), shared by the model analysis and the level-rules tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "onnx_builder.h"

namespace heinfer::test {

/// The index of the node named `name` (a test failure when there is none).
inline int node_index(const model::Graph& g, const std::string& name) {
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (g.nodes[i].name == name) return static_cast<int>(i);
  }
  ADD_FAILURE() << "no node " << name;
  return 0;
}

/// x -> conv -> square1 -> add_const -> relu -> flatten -> gemm -> scale -> residual (+ the
/// flatten) -> square2 -> softmax; x is [1, 3, 3], conv has 2 output channels (2x2 kernel).
inline ModelBuilder depth_model() {
  ModelBuilder b;
  b.input("x", {1, 3, 3}).output("y");
  b.initializer("w", {2, 1, 2, 2}, {0.5f, 1, 1, 1, 1, 1, 1, 1});
  b.initializer("c", {1}, {0.25f});
  b.initializer("fc", {8, 8}, std::vector<float>(64, 0.125f));
  b.initializer("three", {8}, std::vector<float>(8, 3.0f));
  b.node("Conv", {"x", "w"}, {"c1"}, "conv");
  b.node("Mul", {"c1", "c1"}, {"s1"}, "square1");
  b.node("Add", {"s1", "c"}, {"a1"}, "add_const");
  b.node("Relu", {"a1"}, {"r"}, "relu");
  b.node("Flatten", {"r"}, {"f"}, "flatten");
  b.node("Gemm", {"f", "fc"}, {"g"}, "gemm");
  b.node("Mul", {"g", "three"}, {"m"}, "scale");
  b.node("Add", {"m", "f"}, {"res"}, "residual");
  b.node("Mul", {"res", "res"}, {"s2"}, "square2");
  b.node("Softmax", {"s2"}, {"y"}, "softmax");
  return b;
}

}  // namespace heinfer::test
