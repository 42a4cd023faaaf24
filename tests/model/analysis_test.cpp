// Op classification, weight levels, segments between client-aided layers, MACs and liveness.
#include <gtest/gtest.h>

#include "../common/depth_model.h"
#include "../common/onnx_builder.h"
#include "model/analysis.h"
#include "model/liveness.h"

namespace heinfer {
namespace {

using model::OpClass;
using test::attr;
using test::ModelBuilder;

using test::depth_model;
using test::node_index;

TEST(Analysis, ClassesLevelsAndSegmentsOnHandBuiltGraph) {
  const model::Graph g = depth_model().load();
  const model::GraphAnalysis a = model::analyze(g);
  auto at = [&](const char* name) { return a.nodes[static_cast<std::size_t>(node_index(g, name))]; };
  EXPECT_EQ(at("conv").op_class, OpClass::Linear);
  EXPECT_EQ(at("square1").op_class, OpClass::Polynomial);
  EXPECT_EQ(at("relu").op_class, OpClass::ClientAided);
  EXPECT_EQ(at("softmax").op_class, OpClass::ClientAided);
  EXPECT_EQ(at("residual").op_class, OpClass::Linear);

  EXPECT_EQ(at("conv").levels, 1);
  EXPECT_EQ(at("add_const").levels, 0);
  EXPECT_EQ(at("flatten").levels, 0);
  EXPECT_EQ(at("scale").levels, 1);

  ASSERT_EQ(a.segments.size(), 2u);
  EXPECT_EQ(a.segments[0].nodes.size(), 3u);
  EXPECT_EQ(a.segments[1].nodes.size(), 5u);
  EXPECT_EQ(at("flatten").segment, 1);
  EXPECT_EQ(at("relu").segment, -1);
}

TEST(Analysis, TrivialWeightsConsumeNoLevel) {
  ModelBuilder b;
  b.input("x", {4}).output("y");
  b.initializer("w", {4, 4}, {1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1});
  b.node("MatMul", {"x", "w"}, {"y"}, "perm");
  const model::Graph g = b.load();
  EXPECT_EQ(model::analyze(g).nodes[0].levels, 0);
}

TEST(Analysis, MultiplyAccumulateCounts) {
  const model::Graph g = depth_model().load();
  const model::GraphAnalysis a = model::analyze(g);
  // conv: output [2, 2, 2] = 8 elements x (1 channel x 2 x 2 kernel) = 32
  EXPECT_EQ(a.nodes[static_cast<std::size_t>(node_index(g, "conv"))].macs, 32);
  EXPECT_EQ(a.nodes[static_cast<std::size_t>(node_index(g, "gemm"))].macs, 64);
  EXPECT_EQ(a.nodes[static_cast<std::size_t>(node_index(g, "square1"))].macs, 8);
  EXPECT_EQ(a.nodes[static_cast<std::size_t>(node_index(g, "flatten"))].macs, 0);
}

TEST(Liveness, LastUseAndPeak) {
  const model::Graph g = depth_model().load();
  const auto last = model::last_use(g);
  const int flatten = node_index(g, "flatten"), residual = node_index(g, "residual");
  const model::TensorId f = g.nodes[static_cast<std::size_t>(flatten)].outputs[0];
  EXPECT_EQ(last[static_cast<std::size_t>(f)], residual);  // read by gemm and the residual add
  EXPECT_EQ(last[static_cast<std::size_t>(g.outputs[0])], static_cast<int>(g.nodes.size()));
  const auto to_free = model::activations_to_free(g);
  EXPECT_NE(std::find(to_free[static_cast<std::size_t>(residual)].begin(),
                      to_free[static_cast<std::size_t>(residual)].end(), f),
            to_free[static_cast<std::size_t>(residual)].end());
  // Peak: while computing the residual, f (8), m (8) and res (8) are alive.
  EXPECT_EQ(model::peak_live_elements(g), 24);
}

}  // namespace
}  // namespace heinfer
