// Graph passes: constant folding, Identity/Dropout removal, BatchNormalization folding,
// residual Add fusion, dead-node elimination.
#include <gtest/gtest.h>

#include <cmath>

#include "../common/onnx_builder.h"
#include "model/batchnorm_folding.h"
#include "model/constant_folding.h"
#include "model/error.h"
#include "model/identity_removal.h"
#include "model/onnx_import.h"
#include "model/residual_fusion.h"
#include "model/shape_inference.h"

namespace heinfer {
namespace {

using model::OpType;
using model::Shape;
using test::attr;
using test::ModelBuilder;

const model::Tensor& tensor(const model::Graph& g, model::TensorId t) {
  return g.tensors[static_cast<std::size_t>(t)];
}

TEST(ConstantFolding, FoldsTransposeOfWeightsIntoMatMul) {
  ModelBuilder b;
  b.input("x", {4}).output("y");
  b.initializer("w", {3, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  attr(b.node("Transpose", {"w"}, {"wt"}), "perm", std::vector<std::int64_t>{1, 0});
  b.node("MatMul", {"x", "wt"}, {"y"});
  model::Graph g = model::import_onnx(b.proto());
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(model::fold_constants(g), 1);
  ASSERT_EQ(g.nodes.size(), 1u);
  const model::Tensor& wt = tensor(g, g.nodes[0].inputs[1]);
  EXPECT_TRUE(wt.is_constant);
  EXPECT_EQ(wt.shape, (Shape{4, 3}));
  EXPECT_EQ(wt.data, (std::vector<double>{1, 5, 9, 2, 6, 10, 3, 7, 11, 4, 8, 12}));
  // After shape inference the MatMul weight is stored [n, k] = the original w.
  model::infer_shapes(g);
  EXPECT_EQ(tensor(g, g.nodes[0].inputs[1]).data,
            (std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
}

TEST(ConstantFolding, FoldsChainsAndShapeComputations) {
  ModelBuilder b;
  b.input("x", {2, 3}).output("y");
  b.initializer("c", {6}, {1, 2, 3, 4, 5, 6});
  b.initializer_i64("s23", {2}, {2, 3});
  b.initializer_i64("d0", {1}, {0});
  b.initializer_i64("rest", {1}, {-1});
  b.initializer("two", {}, {2});
  b.node("Reshape", {"c", "s23"}, {"c23"});
  b.node("Mul", {"c23", "two"}, {"c2"});
  attr(b.node("Concat", {"d0", "rest"}, {"shape"}), "axis", std::int64_t{0});
  b.node("Add", {"x", "c2"}, {"sum"});
  b.node("Reshape", {"sum", "shape"}, {"y"});
  model::Graph g = model::import_onnx(b.proto());
  EXPECT_EQ(model::fold_constants(g), 3);
  ASSERT_EQ(g.nodes.size(), 2u);
  const model::Tensor& c2 = tensor(g, g.nodes[0].inputs[1]);
  EXPECT_EQ(c2.shape, (Shape{2, 3}));
  EXPECT_EQ(c2.data, (std::vector<double>{2, 4, 6, 8, 10, 12}));
  const model::Tensor& shape = tensor(g, g.nodes[1].inputs[1]);
  EXPECT_EQ(shape.dtype, model::DataType::Int64);
  EXPECT_EQ(shape.data, (std::vector<double>{0, -1}));
  model::infer_shapes(g);
  EXPECT_EQ(tensor(g, g.outputs[0]).shape, (Shape{6}));
}

TEST(ConstantFolding, Int64DivisionTruncates) {
  ModelBuilder b;
  b.input("x", {6}).output("y");
  b.initializer_i64("a", {2}, {-7, 12});
  b.initializer_i64("d", {}, {2});
  b.node("Div", {"a", "d"}, {"q"});
  b.node("Reshape", {"x", "q"}, {"y"});
  model::Graph g = model::import_onnx(b.proto());
  model::fold_constants(g);
  EXPECT_EQ(tensor(g, g.nodes[0].inputs[1]).data, (std::vector<double>{-3, 6}));
}

TEST(ConstantFolding, UnfoldableConstantOpIsNamed) {
  ModelBuilder b;
  b.input("x", {2}).output("y");
  b.initializer("w", {1, 1, 2}, {1, 2});
  b.initializer("k", {1, 1, 1}, {3});
  b.node("Conv", {"w", "k"}, {"wc"}, "const_conv");
  b.node("Add", {"x", "wc"}, {"y"});
  model::Graph g = model::import_onnx(b.proto());
  try {
    model::fold_constants(g);
    FAIL();
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("node 'const_conv' (Conv)"), std::string::npos) << e.what();
  }
}

TEST(IdentityRemoval, RemovesIdentityAndDropoutIncludingBeforeOutputs) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.node("Identity", {"x"}, {"a"});
  b.node("Relu", {"a"}, {"r"});
  b.node("Dropout", {"r"}, {"d"});
  b.node("Identity", {"d"}, {"y"});
  const model::Graph g = b.load();
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op, OpType::Relu);
  EXPECT_EQ(g.nodes[0].inputs[0], g.inputs[0]);
  EXPECT_EQ(g.outputs[0], g.nodes[0].outputs[0]);
}

TEST(DeadNodes, UnreadBranchesAreRemoved) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.node("Relu", {"x"}, {"y"});
  b.node("Relu", {"x"}, {"dead1"});
  b.node("Relu", {"dead1"}, {"dead2"});
  model::Graph g = model::import_onnx(b.proto());
  model::infer_shapes(g);
  EXPECT_EQ(model::remove_dead_nodes(g), 2);
  EXPECT_EQ(g.nodes.size(), 1u);
}

/// Conv -> BN -> Relu with non-trivial BN statistics.
ModelBuilder conv_bn_model() {
  ModelBuilder b;
  b.input("x", {2, 4, 4}).output("y");
  b.initializer("w", {3, 2, 3, 3}, std::vector<float>(54, 0.5f));
  b.initializer("bias", {3}, {0.1f, -0.2f, 0.3f});
  b.initializer("s", {3}, {1.5f, 0.5f, 2.0f});
  b.initializer("b", {3}, {0.0f, 1.0f, -1.0f});
  b.initializer("m", {3}, {0.2f, -0.1f, 0.0f});
  b.initializer("v", {3}, {0.8f, 1.2f, 4.0f});
  b.node("Conv", {"x", "w", "bias"}, {"c"}, "conv");
  b.node("BatchNormalization", {"c", "s", "b", "m", "v"}, {"n"}, "bn");
  b.node("Relu", {"n"}, {"y"}, "relu");
  return b;
}

TEST(BatchNormFolding, FoldsIntoConvWithExactCoefficients) {
  const model::Graph g = conv_bn_model().load();
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].op, OpType::Conv);
  EXPECT_EQ(g.nodes[1].op, OpType::Relu);
  EXPECT_EQ(g.nodes[0].outputs[0], g.nodes[1].inputs[0]);
  const auto& w = tensor(g, g.nodes[0].inputs[1]).data;
  const auto& bias = tensor(g, g.nodes[0].inputs[2]).data;
  const double s[] = {1.5, 0.5, 2.0}, bb[] = {0, 1, -1}, m[] = {0.2, -0.1, 0}, v[] = {0.8, 1.2, 4.0};
  const double cb[] = {0.1, -0.2, 0.3};
  for (int c = 0; c < 3; ++c) {
    const double scale = static_cast<double>(static_cast<float>(s[c])) /
                         std::sqrt(static_cast<double>(static_cast<float>(v[c])) + 1e-5);
    EXPECT_NEAR(w[static_cast<std::size_t>(c) * 18], 0.5 * scale, 1e-6);
    EXPECT_NEAR(bias[static_cast<std::size_t>(c)], cb[c] * scale + bb[c] - m[c] * scale, 1e-6);
  }
}

TEST(BatchNormFolding, CanBeDisabledAndSkipsSharedConvOutputs) {
  model::LoadOptions no_fold;
  no_fold.fold_batchnorm = false;
  EXPECT_EQ(conv_bn_model().load(no_fold).nodes.size(), 3u);

  ModelBuilder b = conv_bn_model();
  b.output("c");  // the conv output is also a graph output: BN must stay
  const model::Graph g = b.load();
  EXPECT_EQ(g.nodes.size(), 3u);
  EXPECT_EQ(g.nodes[1].op, OpType::BatchNormalization);
}

TEST(BatchNormFolding, FoldsIntoGemm) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.initializer("w", {2, 3}, {1, 2, 3, 4, 5, 6});
  b.initializer("s", {2}, {2, 3});
  b.initializer("b", {2}, {1, 1});
  b.initializer("m", {2}, {0, 0});
  b.initializer("v", {2}, {1, 1});
  attr(b.node("Gemm", {"x", "w"}, {"g"}), "transB", std::int64_t{1});
  attr(b.node("BatchNormalization", {"g", "s", "b", "m", "v"}, {"y"}), "epsilon", 0.0f);
  const model::Graph g = b.load();
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(tensor(g, g.nodes[0].inputs[1]).data, (std::vector<double>{2, 4, 6, 12, 15, 18}));
  EXPECT_EQ(tensor(g, g.nodes[0].inputs[2]).data, (std::vector<double>{1, 1}));
}

/// x -> Relu r -> Conv c (3x3, pad 1, 4 -> 4) -> Add(skip, c) -> y, where the skip is
/// `skip`: "r" (a round's output), "x" (a graph input) or "d" (another Conv's output).
ModelBuilder residual_block(const std::string& skip, bool conv_output_read_twice = false) {
  ModelBuilder b;
  b.input("x", {4, 5, 5}).output("y");
  if (conv_output_read_twice) b.output("c");
  b.initializer("w", {4, 4, 3, 3}, std::vector<float>(144, 0.25f));
  b.initializer("wd", {4, 4, 1, 1}, std::vector<float>(16, 0.5f));
  b.node("Relu", {"x"}, {"r"});
  attr(b.node("Conv", {"r", "w"}, {"c"}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Conv", {"x", "wd"}, {"d"});
  b.node("Add", {skip, "c"}, {"y"});
  return b;
}

TEST(ResidualFusion, AddOfAConvAndARoundOutputBecomesOneConv) {
  const model::Graph g = residual_block("r").load();
  ASSERT_EQ(g.nodes.size(), 2u);  // Relu, Conv(r, w, -, r); the dead 1x1 Conv is removed
  const model::Node& conv = g.nodes[1];
  EXPECT_EQ(conv.op, OpType::Conv);
  EXPECT_TRUE(std::get<model::ConvParams>(conv.params).residual);
  ASSERT_EQ(conv.inputs.size(), 4u);
  EXPECT_EQ(conv.inputs[2], model::kNoTensor);
  EXPECT_EQ(conv.inputs[3], g.nodes[0].outputs[0]);
  EXPECT_EQ(conv.outputs[0], g.outputs[0]);
  model::LoadOptions unfused;
  unfused.fuse_residual = false;
  EXPECT_EQ(residual_block("r").load(unfused).nodes.size(), 3u);
}

TEST(ResidualFusion, LinearSkipsInputsAndSharedOutputsAreLeftAlone) {
  // A skip from a linear node may sit deeper than the Conv's input (fusing would cost a
  // level), a graph input carries no pending factors, and a Conv output read elsewhere
  // must stay.
  for (const char* skip : {"d", "x"}) {
    model::Graph g = residual_block(skip).load();
    EXPECT_EQ(model::fuse_residual_adds(g), 0) << skip;
    EXPECT_EQ(g.nodes.back().op, OpType::Add) << skip;
  }
  model::LoadOptions unfused;
  unfused.fuse_residual = false;
  model::Graph shared = residual_block("r", true).load(unfused);
  EXPECT_EQ(model::fuse_residual_adds(shared), 0);
}

TEST(ResidualFusion, AConvWithMoreThanThreeInputsInAFileIsRefused) {
  ModelBuilder b;
  b.input("x", {4, 5, 5}).output("y");
  b.initializer("w", {4, 4, 1, 1}, std::vector<float>(16, 0.5f));
  b.initializer("b", {4}, std::vector<float>(4, 0.0f));
  b.node("Relu", {"x"}, {"r"});
  b.node("Conv", {"x", "w", "b", "r"}, {"y"});
  try {
    b.load();
    FAIL() << "a 4-input Conv was accepted";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("Conv takes 2 or 3 inputs"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace heinfer
