// Load-time evaluation: shape sub-graphs with a symbolic batch, the element maps shared by
// the constant evaluator and the executors, the smooth activations, and the refusals that
// keep the batch a free dim under batch-axis packing.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "../common/onnx_builder.h"
#include "model/activation_fn.h"
#include "model/element_map.h"
#include "model/error.h"
#include "runtime/plain_executor.h"

namespace heinfer {
namespace {

using model::OpType;
using model::Shape;
using test::attr;
using test::ModelBuilder;

/// x.view(x.size(0), -1) as PyTorch exports it: Shape -> Gather(0) -> Unsqueeze ->
/// Concat([N], [-1]) -> Reshape, then a scale so the model has a linear node.
ModelBuilder view_model(std::int64_t batch_multiplier) {
  ModelBuilder b(13);
  b.input("x", {2, 3}).output("y");
  b.initializer_i64("zero", {}, {0});
  b.initializer_i64("axes", {1}, {0});
  b.initializer_i64("minus_one", {1}, {-1});
  b.initializer_i64("k", {}, {batch_multiplier});
  b.initializer("half", {}, {0.5f});
  b.node("Shape", {"x"}, {"shape"});
  attr(b.node("Gather", {"shape", "zero"}, {"n"}), "axis", std::int64_t{0});
  b.node("Mul", {"n", "k"}, {"nk"});
  b.node("Unsqueeze", {"nk", "axes"}, {"n1"});
  attr(b.node("Concat", {"n1", "minus_one"}, {"target"}), "axis", std::int64_t{0});
  b.node("Reshape", {"x", "target"}, {"flat"});
  b.node("Mul", {"flat", "half"}, {"y"});
  return b;
}

TEST(LoadTimeEvaluation, ViewWithTheSymbolicBatchKeepsTheBatch) {
  const model::Graph g = view_model(1).load();
  ASSERT_EQ(g.nodes.size(), 2u);  // Reshape (a relabeling) and the scale; no shape arithmetic
  EXPECT_EQ(g.nodes[0].op, OpType::Reshape);
  EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.outputs[0])].shape, (Shape{6}));
  runtime::PlainTensor x = runtime::make_plain_tensor({2, 3}, 3);
  for (std::size_t i = 0; i < x.data.size(); ++i) x.data[i] = static_cast<double>(i);
  const auto y = runtime::run_plain(g, {x});
  ASSERT_EQ(y[0].batch, 3);
  EXPECT_EQ(y[0].data, [&] {
    std::vector<double> v(x.data);
    for (double& e : v) e *= 0.5;
    return v;
  }());
}

TEST(LoadTimeEvaluation, RefusesABatchFoldedIntoAnotherDim) {
  try {
    view_model(2).load();
    FAIL() << "a Reshape to [2N, -1] must be refused";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("2 * N"), std::string::npos) << e.what();
  }
}

TEST(LoadTimeEvaluation, RefusesBatchDependentConstants) {
  ModelBuilder b(13);
  b.input("x", {4}).output("y");
  b.node("Shape", {"x"}, {"shape"});
  b.node("ConstantOfShape", {"shape"}, {"zeros"});
  b.node("Add", {"x", "zeros"}, {"y"});
  try {
    b.load();
    FAIL() << "ConstantOfShape([N, 4]) must be refused";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("batch size"), std::string::npos) << e.what();
  }
}

TEST(LoadTimeEvaluation, SliceAndGatherOfActivationsBecomeElementMaps) {
  ModelBuilder b(13);
  b.input("x", {4, 3}).output("y");
  b.initializer_i64("starts", {1}, {3});
  b.initializer_i64("ends", {1}, {-100});
  b.initializer_i64("axes", {1}, {1});
  b.initializer_i64("steps", {1}, {-2});
  b.initializer_i64("idx", {2}, {-1, 0});
  b.node("Slice", {"x", "starts", "ends", "axes", "steps"}, {"s"});  // rows 3, 1
  attr(b.node("Gather", {"s", "idx"}, {"y"}), "axis", std::int64_t{2});  // columns 2, 0
  const model::Graph g = b.load();
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(std::get<model::ElementMapParams>(g.nodes[0].params).source, (std::vector<std::int64_t>{9, 10, 11, 3, 4, 5}));
  EXPECT_EQ(std::get<model::ElementMapParams>(g.nodes[1].params).source, (std::vector<std::int64_t>{2, 0, 5, 3}));
  EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.outputs[0])].shape, (Shape{2, 2}));
}

TEST(LoadTimeEvaluation, RefusesSelectingSamples) {
  for (const std::string op : {"Slice", "Gather"}) {
    ModelBuilder b(13);
    b.input("x", {4}).output("y");
    b.initializer_i64("zero", {1}, {0});
    b.initializer_i64("one", {1}, {1});
    if (op == "Slice") b.node("Slice", {"x", "zero", "one", "zero"}, {"y"});
    else attr(b.node("Gather", {"x", "zero"}, {"y"}), "axis", std::int64_t{0});
    EXPECT_THROW(b.load(), model::ModelError) << op;
  }
}

TEST(LoadTimeEvaluation, Int64ExtremesAreIndicesNotUndefinedBehaviour) {
  // int64 constants are held as doubles: INT64_MAX arrives as 2^63. As a Slice end (how
  // exporters write "to the end") it saturates and means the end; as a Reshape dim it is
  // a clear error (found by fuzz_load_onnx).
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  ModelBuilder b(13);
  b.input("x", {4}).output("y");
  b.initializer_i64("starts", {1}, {1});
  b.initializer_i64("ends", {1}, {kMax});
  b.initializer_i64("axes", {1}, {1});
  b.node("Slice", {"x", "starts", "ends", "axes"}, {"y"});
  const model::Graph g = b.load();
  EXPECT_EQ(std::get<model::ElementMapParams>(g.nodes[0].params).source, (std::vector<std::int64_t>{1, 2, 3}));
  ModelBuilder r(13);
  r.input("x", {4}).output("y");
  r.initializer_i64("shape", {2}, {0, kMax});
  r.node("Reshape", {"x", "shape"}, {"y"});
  EXPECT_THROW(r.load(), model::ModelError);
}

/// ConstantOfShape([1, width]) through `transposes` Transposes, added to the input.
ModelBuilder transpose_chain(std::int64_t width, int transposes) {
  ModelBuilder b(13);
  b.input("x", {1, width}).output("y");
  b.initializer_i64("shape", {2}, {1, width});
  const auto name = [](int i) { return std::string("c").append(std::to_string(i)); };
  b.node("ConstantOfShape", {"shape"}, {name(0)});
  for (int i = 0; i < transposes; ++i) {
    attr(b.node("Transpose", {name(i)}, {name(i + 1)}), "perm", std::vector<std::int64_t>{1, 0});
  }
  b.node("Add", {"x", name(transposes)}, {"y"});
  return b;
}

TEST(LoadTimeEvaluation, ALoadHasABudgetOfComputedElements) {
  // Each node stays under kMaxComputedElements; their sum is bounded too, so that a chain
  // of large constant ops in a small file cannot make a load slow (found by fuzz_load_onnx).
  EXPECT_NO_THROW(transpose_chain(8, 40).load());
  constexpr std::int64_t kWide = model::kMaxComputedElements / 2;
  static_assert(5 * kWide > model::kMaxLoadTimeElements);  // writes kWide, then reads+writes 2 kWide per node
  EXPECT_NO_THROW(transpose_chain(kWide, 0).load());
  try {
    transpose_chain(kWide, 2).load();
    ADD_FAILURE() << "a load past the budget was accepted";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("the limit of a load"), std::string::npos) << e.what();
  }
}

TEST(LoadTimeEvaluation, MapsOnActivationsHaveABudgetToo) {
  // Zero Pads of a [2^21] activation: each map has 2^21 entries, under the per-node cap;
  // 32 of them reach the load's budget of 2^26 entries, 33 pass it.
  auto pads = [](int count) {
    ModelBuilder b(13);
    b.input("x", {std::int64_t{1} << 21}).output("y");
    b.initializer_i64("pads", {4}, {0, 0, 0, 0});
    for (int i = 0; i < count; ++i) {
      const std::string in = i == 0 ? std::string("x") : std::string("p").append(std::to_string(i - 1));
      const std::string out = i + 1 == count ? std::string("y") : std::string("p").append(std::to_string(i));
      b.node("Pad", {in, "pads"}, {out});
    }
    return b;
  };
  static_assert(32 * (std::int64_t{1} << 21) == model::kMaxLoadMapEntries);
  EXPECT_NO_THROW(pads(32).load());
  try {
    pads(33).load();
    ADD_FAILURE() << "a load past the map budget was accepted";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("the limit of a load"), std::string::npos) << e.what();
  }
}

TEST(ElementMaps, PadModesMatchTheOperatorDefinition) {
  // [a b c] padded by 2 on the left and 1 on the right.
  EXPECT_EQ(model::pad_map({3}, {2}, {1}, model::PadMode::Constant, "t").source,
            (std::vector<std::int64_t>{-1, -1, 0, 1, 2, -1}));
  EXPECT_EQ(model::pad_map({3}, {2}, {1}, model::PadMode::Reflect, "t").source,
            (std::vector<std::int64_t>{2, 1, 0, 1, 2, 1}));
  EXPECT_EQ(model::pad_map({3}, {2}, {1}, model::PadMode::Edge, "t").source,
            (std::vector<std::int64_t>{0, 0, 0, 1, 2, 2}));
  EXPECT_EQ(model::pad_map({4}, {-1}, {-2}, model::PadMode::Constant, "t").source,
            (std::vector<std::int64_t>{1}));
  EXPECT_THROW(model::pad_map({2}, {2}, {0}, model::PadMode::Reflect, "t"), model::ModelError);
  EXPECT_THROW(model::pad_map({2}, {-1}, {-1}, model::PadMode::Constant, "t"), model::ModelError);
}

TEST(ElementMaps, ExpandTransposeAndGatherIndices) {
  EXPECT_EQ(model::expand_map({2, 1}, {2, 3}, "t").source, (std::vector<std::int64_t>{0, 0, 0, 1, 1, 1}));
  const auto t = model::transpose_map({2, 3}, {1, 0});
  EXPECT_EQ(t.out, (Shape{3, 2}));
  EXPECT_EQ(t.source, (std::vector<std::int64_t>{0, 3, 1, 4, 2, 5}));
  EXPECT_THROW(model::gather_map({3}, 0, {1}, {3}, "t"), model::ModelError);
  EXPECT_THROW(model::gather_map({3}, 0, {1}, {-4}, "t"), model::ModelError);
  EXPECT_THROW(model::slice_map({3}, {0}, {3}, {0}, {0}, "t"), model::ModelError);
}

TEST(SmoothActivations, ValuesAtKnownPoints) {
  const model::ActivationParams none{}, hard_swish{1.0 / 6.0, 0.5}, hard_sigmoid{0.2, 0.5};
  EXPECT_DOUBLE_EQ(model::activation_value(OpType::Sigmoid, none, 0.0), 0.5);
  EXPECT_NEAR(model::activation_value(OpType::Sigmoid, none, -800.0), 0.0, 1e-300);
  EXPECT_DOUBLE_EQ(model::activation_value(OpType::HardSwish, hard_swish, 3.0), 3.0);
  EXPECT_DOUBLE_EQ(model::activation_value(OpType::HardSwish, hard_swish, -3.0), 0.0);
  EXPECT_DOUBLE_EQ(model::activation_value(OpType::HardSigmoid, hard_sigmoid, 1.0), 0.7);
  EXPECT_DOUBLE_EQ(model::activation_value(OpType::Softplus, none, 800.0), 800.0);  // no overflow
  EXPECT_NEAR(model::activation_value(OpType::Softplus, none, 0.0), std::log(2.0), 1e-15);
  EXPECT_THROW(model::activation_value(OpType::Relu, none, 1.0), model::ModelError);
}

}  // namespace
}  // namespace heinfer
