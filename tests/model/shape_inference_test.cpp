// Shape inference and normalization of individual operators.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "../common/onnx_builder.h"
#include "model/error.h"

namespace heinfer {
namespace {

using model::Shape;
using test::attr;
using test::ModelBuilder;

const model::Tensor& out(const model::Graph& g, std::size_t node = 0) {
  return g.tensors[static_cast<std::size_t>(g.nodes.at(node).outputs[0])];
}

std::vector<float> iota(std::size_t n, float start = 1.0f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

TEST(ShapeInference, ConvWithGroupsStridesDilationsAndPads) {
  ModelBuilder b;
  b.input("x", {4, 11, 9}).output("y");
  b.initializer("w", {6, 2, 3, 3}, iota(6 * 2 * 9));
  auto& n = b.node("Conv", {"x", "w"}, {"y"}, "conv");
  attr(n, "group", std::int64_t{2});
  attr(n, "strides", std::vector<std::int64_t>{2, 1});
  attr(n, "dilations", std::vector<std::int64_t>{1, 2});
  attr(n, "pads", std::vector<std::int64_t>{1, 0, 2, 1});
  const model::Graph g = b.load();
  // H: (11 + 1 + 2 - 3) / 2 + 1 = 6; W: (9 + 0 + 1 - 5) / 1 + 1 = 6.
  EXPECT_EQ(out(g).shape, (Shape{6, 6, 6}));
  const auto& p = std::get<model::ConvParams>(g.nodes[0].params);
  EXPECT_EQ(p.group, 2);
  EXPECT_EQ(p.kernel, (Shape{3, 3}));
  EXPECT_EQ(p.pads_begin, (Shape{1, 0}));
  EXPECT_EQ(p.pads_end, (Shape{2, 1}));
}

TEST(ShapeInference, ConvAutoPadSameUpperAndLower) {
  for (const char* mode : {"SAME_UPPER", "SAME_LOWER"}) {
    ModelBuilder b;
    b.input("x", {1, 6, 6}).output("y");
    b.initializer("w", {1, 1, 4, 4}, iota(16));
    auto& n = b.node("Conv", {"x", "w"}, {"y"}, "conv");
    attr(n, "auto_pad", std::string(mode));
    attr(n, "strides", std::vector<std::int64_t>{2, 2});
    const model::Graph g = b.load();
    EXPECT_EQ(out(g).shape, (Shape{1, 3, 3}));
    // total pad = (3 - 1) * 2 + 4 - 6 = 2 -> 1 + 1 either way
    const auto& p = std::get<model::ConvParams>(g.nodes[0].params);
    EXPECT_EQ(p.pads_begin, (Shape{1, 1})) << mode;
    EXPECT_EQ(p.pads_end, (Shape{1, 1})) << mode;
  }
  ModelBuilder b;
  b.input("x", {1, 5}).output("y");
  b.initializer("w", {1, 1, 2}, {1, 1});
  attr(b.node("Conv", {"x", "w"}, {"y"}), "auto_pad", std::string("SAME_LOWER"));
  const model::Graph g = b.load();
  const auto& p = std::get<model::ConvParams>(g.nodes[0].params);
  EXPECT_EQ(p.pads_begin, (Shape{1}));  // odd total pad goes first for SAME_LOWER
  EXPECT_EQ(p.pads_end, (Shape{0}));
}

TEST(ShapeInference, ConvRejectsWrongGroupAndNonConstantWeights) {
  ModelBuilder b;
  b.input("x", {4, 5, 5}).output("y");
  b.initializer("w", {6, 3, 3, 3}, iota(6 * 27));
  attr(b.node("Conv", {"x", "w"}, {"y"}, "conv"), "group", std::int64_t{2});
  EXPECT_THROW(b.load(), model::ModelError);

  ModelBuilder c;
  c.input("x", {1, 5, 5}).input("w", {1, 3, 3}).output("y");
  c.node("Conv", {"x", "w"}, {"y"}, "conv");
  try {
    c.load();
    FAIL();
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("must be a constant"), std::string::npos) << e.what();
  }
}

// Hostile window attributes are refused with a clear error before anything is sized from
// them: pads near INT64_MAX (which overflowed to a "valid" Conv of zeros) and a MaxPool
// of 46341 x 46341 taps (which allocated 32 GiB of tap tables).
TEST(ShapeInference, HostileWindowAttributesAreRefused) {
  auto error = [](ModelBuilder& b) {
    try {
      b.load();
    } catch (const model::ModelError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  ModelBuilder conv;
  conv.input("x", {1, 5, 5}).output("y");
  conv.initializer("w", {1, 1, 3, 3}, iota(9));
  const std::int64_t huge = std::numeric_limits<std::int64_t>::max() - 2;
  attr(conv.node("Conv", {"x", "w"}, {"y"}, "conv"), "pads", std::vector<std::int64_t>{huge, 0, 4, 0});
  EXPECT_NE(error(conv).find("pads must be at most 16777216"), std::string::npos) << error(conv);

  ModelBuilder pool;  // a 1x1 input padded to fit the window
  pool.input("x", {1, 1, 1}).output("y");
  auto& mp = pool.node("MaxPool", {"x"}, {"y"}, "pool");
  attr(mp, "kernel_shape", std::vector<std::int64_t>{46341, 46341});
  attr(mp, "pads", std::vector<std::int64_t>{23170, 23170, 23170, 23170});
  EXPECT_NE(error(pool).find("more than 1048576 taps"), std::string::npos) << error(pool);

  ModelBuilder stride;
  stride.input("x", {1, 8, 8}).output("y");
  auto& n = stride.node("AveragePool", {"x"}, {"y"}, "pool");
  attr(n, "kernel_shape", std::vector<std::int64_t>{2, 2});
  attr(n, "strides", std::vector<std::int64_t>{std::int64_t{1} << 40, 1});
  EXPECT_NE(error(stride).find("must be at most 16777216"), std::string::npos) << error(stride);
}

TEST(ShapeInference, PoolCeilModeAndPytorchLastWindowRule) {
  ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y");
  auto& n = b.node("MaxPool", {"x"}, {"y"});
  attr(n, "kernel_shape", std::vector<std::int64_t>{3, 3});
  attr(n, "strides", std::vector<std::int64_t>{2, 2});
  attr(n, "ceil_mode", std::int64_t{1});
  EXPECT_EQ(out(b.load()).shape, (Shape{1, 2, 2}));  // ceil((4 - 3) / 2) + 1

  // in 5, pad 1+1, kernel 2, stride 2: ceil(5/2)+1 = 4 windows, but the 4th would start
  // at 6 >= 5 + 1 (inside the end padding), so it is dropped: 3.
  ModelBuilder c;
  c.input("x", {1, 5}).output("y");
  auto& m = c.node("AveragePool", {"x"}, {"y"});
  attr(m, "kernel_shape", std::vector<std::int64_t>{2});
  attr(m, "strides", std::vector<std::int64_t>{2});
  attr(m, "pads", std::vector<std::int64_t>{1, 1});
  attr(m, "ceil_mode", std::int64_t{1});
  EXPECT_EQ(out(c.load()).shape, (Shape{1, 3}));
}

TEST(ShapeInference, GlobalAveragePoolKeepsSpatialRank) {
  ModelBuilder b;
  b.input("x", {7, 3, 5}).output("y");
  b.node("GlobalAveragePool", {"x"}, {"y"});
  EXPECT_EQ(out(b.load()).shape, (Shape{7, 1, 1}));
}

TEST(ShapeInference, GemmIsNormalizedToOutMajorWeightsWithAlphaBeta) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.initializer("B", {2, 3}, {1, 2, 3, 4, 5, 6});  // transB=1: [N=2, K=3]
  b.initializer("C", {1, 2}, {10, 20});
  auto& n = b.node("Gemm", {"x", "B", "C"}, {"y"});
  attr(n, "transB", std::int64_t{1});
  attr(n, "alpha", 2.0f);
  attr(n, "beta", 0.5f);
  const model::Graph g = b.load();
  EXPECT_EQ(out(g).shape, (Shape{2}));
  const auto& p = std::get<model::GemmParams>(g.nodes[0].params);
  EXPECT_EQ(p.k, 3);
  EXPECT_EQ(p.n, 2);
  const auto& w = g.tensors[static_cast<std::size_t>(g.nodes[0].inputs[1])];
  EXPECT_EQ(w.shape, (Shape{2, 3}));
  EXPECT_EQ(w.data, (std::vector<double>{2, 4, 6, 8, 10, 12}));
  EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.nodes[0].inputs[2])].data, (std::vector<double>{5, 10}));
}

TEST(ShapeInference, MatMulWithConstantOnEitherSide) {
  ModelBuilder b;
  b.input("x", {5, 4}).output("y");
  b.initializer("w", {4, 3}, iota(12));
  b.node("MatMul", {"x", "w"}, {"y"});
  const model::Graph g = b.load();
  EXPECT_EQ(out(g).shape, (Shape{5, 3}));
  const auto& p = std::get<model::GemmParams>(g.nodes[0].params);
  EXPECT_EQ(p.outer, 5);
  EXPECT_EQ(p.inner, 1);

  ModelBuilder c;
  c.input("x", {2, 4, 6}).output("y");
  c.initializer("w", {3, 4}, iota(12));
  c.node("MatMul", {"w", "x"}, {"y"});
  const model::Graph h = c.load();
  EXPECT_EQ(out(h).shape, (Shape{2, 3, 6}));
  const auto& q = std::get<model::GemmParams>(h.nodes[0].params);
  EXPECT_EQ(q.outer, 2);
  EXPECT_EQ(q.n, 3);
  EXPECT_EQ(q.inner, 6);
}

TEST(ShapeInference, BroadcastingWithConstantsKeepsTheBatch) {
  ModelBuilder b;
  b.input("x", {3, 1, 5}).output("y");
  b.initializer("c", {1, 3, 4, 1}, iota(12));  // dim 0 lines up with the batch (size 1)
  b.node("Add", {"x", "c"}, {"y"});
  EXPECT_EQ(out(b.load()).shape, (Shape{3, 4, 5}));

  ModelBuilder c;
  c.input("x", {4}).output("y");
  c.initializer("c", {2, 4}, iota(8));  // varies along the batch axis
  c.node("Mul", {"x", "c"}, {"y"}, "scale");
  EXPECT_THROW(c.load(), model::ModelError);
}

TEST(ShapeInference, SquareFromMulAndPow) {
  ModelBuilder b;
  b.input("x", {3}).output("y").output("z");
  b.initializer("two", {}, {2.0f});
  b.node("Mul", {"x", "x"}, {"y"});
  b.node("Pow", {"x", "two"}, {"z"});
  const model::Graph g = b.load();
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<model::SquareParams>(g.nodes[0].params));
  EXPECT_TRUE(std::holds_alternative<model::SquareParams>(g.nodes[1].params));
  EXPECT_EQ(g.nodes[1].inputs.size(), 1u);
}

TEST(ShapeInference, PowersBecomeProductsIdentityOrSqrt) {
  auto pow = [](std::vector<float> exponent, std::vector<std::int64_t> dims) {
    ModelBuilder b;
    b.input("x", {3}).output("y");
    b.initializer("e", dims, exponent);
    b.node("Pow", {"x", "e"}, {"y"});
    return b;
  };
  auto ops = [](const model::Graph& g) {
    std::vector<model::OpType> v;
    for (const auto& n : g.nodes) v.push_back(n.op);
    return v;
  };
  using model::OpType;
  EXPECT_EQ(ops(pow({4}, {}).load()), (std::vector<OpType>{OpType::Mul, OpType::Mul}));  // x^2, (x^2)^2
  EXPECT_EQ(ops(pow({7}, {1}).load()).size(), 4u);  // x^2, x^3, x^4, x^7
  EXPECT_EQ(ops(pow({3, 3, 3}, {3}).load()).size(), 2u);  // uniform per-element exponents
  EXPECT_EQ(ops(pow({0.5f}, {}).load()), (std::vector<OpType>{OpType::Sqrt}));
  EXPECT_TRUE(ops(pow({1}, {}).load()).empty() || ops(pow({1}, {}).load()) == (std::vector<OpType>{OpType::Identity}));
  EXPECT_EQ(ops(pow({1, 2, 3}, {3}).load()).size(), 4u);  // x^2, select x or 1, select x^2 or 1, product
  for (auto [e, dims] : {std::pair{std::vector<float>{1.5f, 2, 3}, std::vector<std::int64_t>{3}},
                         std::pair{std::vector<float>{-1}, std::vector<std::int64_t>{}},
                         std::pair{std::vector<float>{2.5f}, std::vector<std::int64_t>{}},
                         std::pair{std::vector<float>{65}, std::vector<std::int64_t>{}}}) {
    EXPECT_THROW(pow(e, dims).load(), model::ModelError) << e[0];
  }
}

TEST(ShapeInference, ReshapeKeepsBatchOnlyWithZeroMinusOneOrDeclaredBatch) {
  auto reshape = [](std::vector<std::int64_t> shape, std::int64_t declared_batch) {
    ModelBuilder b;
    b.input("x", {2, 3, 4}).output("y");
    if (declared_batch) {
      b.proto().mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()
          ->mutable_shape()->mutable_dim(0)->set_dim_value(declared_batch);
    }
    b.initializer_i64("s", {static_cast<std::int64_t>(shape.size())}, shape);
    b.node("Reshape", {"x", "s"}, {"y"});
    return out(b.load()).shape;
  };
  EXPECT_EQ(reshape({0, -1}, 0), (Shape{24}));
  EXPECT_EQ(reshape({-1, 6, 4}, 0), (Shape{6, 4}));
  EXPECT_EQ(reshape({0, 0, 12}, 0), (Shape{2, 12}));
  EXPECT_EQ(reshape({1, -1}, 1), (Shape{24}));  // exported with a static batch of 1
  EXPECT_THROW(reshape({1, -1}, 0), model::ModelError);
  EXPECT_THROW(reshape({-1, 4}, 0), model::ModelError);  // would fold samples into rows
  EXPECT_THROW(reshape({48, -1}, 2), model::ModelError);
}

TEST(ShapeInference, FlattenTransposeConcatPad) {
  ModelBuilder b(13);
  b.input("x", {2, 3, 4}).output("f").output("t").output("c").output("p");
  b.node("Flatten", {"x"}, {"f"});
  attr(b.node("Transpose", {"x"}, {"t"}), "perm", std::vector<std::int64_t>{0, 3, 1, 2});
  attr(b.node("Concat", {"x", "x"}, {"c"}), "axis", std::int64_t{-2});
  b.initializer_i64("pads", {8}, {0, 1, 0, 2, 0, 0, 3, 1});
  b.node("Pad", {"x", "pads"}, {"p"});
  const model::Graph g = b.load();
  EXPECT_EQ(out(g, 0).shape, (Shape{24}));
  EXPECT_EQ(out(g, 1).shape, (Shape{4, 2, 3}));
  EXPECT_EQ(out(g, 2).shape, (Shape{2, 6, 4}));
  EXPECT_EQ(out(g, 3).shape, (Shape{3, 6, 7}));
  EXPECT_EQ(std::get<model::TransposeParams>(g.nodes[1].params).perm, (Shape{2, 0, 1}));
  EXPECT_EQ(std::get<model::ConcatParams>(g.nodes[2].params).axis, 1);
}

TEST(ShapeInference, SoftmaxAxesPerOpset) {
  for (std::int64_t opset : {11, 13}) {
    ModelBuilder b(opset);
    b.input("x", {3, 4}).output("y");
    b.node("Softmax", {"x"}, {"y"});
    const model::Graph g = b.load();
    const auto& p = std::get<model::SoftmaxParams>(g.nodes[0].params);
    if (opset == 11) {  // coerced to 2-D at axis 1: one row of 12 per sample
      EXPECT_EQ(p.n, 12);
      EXPECT_EQ(p.inner, 1);
    } else {  // axis -1
      EXPECT_EQ(p.outer, 3);
      EXPECT_EQ(p.n, 4);
    }
  }
}

TEST(ShapeInference, ClipBoundsFromAttributesOrInputs) {
  ModelBuilder b(6);
  b.input("x", {3}).output("y");
  auto& n = b.node("Clip", {"x"}, {"y"});
  attr(n, "min", 0.0f);
  attr(n, "max", 6.0f);
  const model::Graph g = b.load();
  const auto& p = std::get<model::ClipParams>(g.nodes[0].params);
  EXPECT_EQ(p.min, 0.0);
  EXPECT_EQ(p.max, 6.0);

  ModelBuilder c(13);
  c.input("x", {3}).output("y");
  c.initializer("hi", {}, {6.0f});
  c.node("Clip", {"x", "", "hi"}, {"y"});
  const model::Graph h = c.load();
  const auto& q = std::get<model::ClipParams>(h.nodes[0].params);
  EXPECT_TRUE(std::isinf(q.min));
  EXPECT_EQ(q.max, 6.0);
}

}  // namespace
}  // namespace heinfer
