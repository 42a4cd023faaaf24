// Resize / Upsample on activations: element maps for nearest, sparse linear maps for linear
// and cubic, and the refusals that keep the batch a free dim. The operator's values are
// checked against the ONNX test data (tests/runtime/conformance_test.cpp, 24 cases).
#include <gtest/gtest.h>

#include "../common/onnx_builder.h"
#include "model/error.h"
#include "model/resize.h"

namespace heinfer {
namespace {

using model::Shape;
using test::attr;
using test::ModelBuilder;

/// Resize-13 of x [N, 1, 2, 2] by `scales` (4 entries) in `mode`.
model::Graph resize(const std::vector<float>& scales, const std::string& mode) {
  ModelBuilder b(13);
  b.input("x", {1, 2, 2}).output("y");
  b.initializer("roi", {0}, {});
  b.initializer("scales", {4}, scales);
  attr(b.node("Resize", {"x", "roi", "scales"}, {"y"}), "mode", mode);
  return b.load();
}

TEST(Resize, NearestIsAnElementMapAndLinearASparseLinearMap) {
  const model::Graph nearest = resize({1, 1, 2, 2}, "nearest");
  ASSERT_EQ(nearest.nodes.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<model::ElementMapParams>(nearest.nodes[0].params));
  EXPECT_EQ(nearest.tensors[static_cast<std::size_t>(nearest.outputs[0])].shape, (Shape{1, 4, 4}));
  const model::Graph linear = resize({1, 1, 2, 2}, "linear");
  const auto& m = std::get<model::LinearMapParams>(linear.nodes[0].params);
  ASSERT_EQ(m.row_begin.size(), 17u);
  // half_pixel: output (0, 1) reads x_ori = (0.25, 0.25) clamped to row 0: 0.75 x00 + 0.25 x01.
  double sum = 0;
  for (auto k = m.row_begin[1]; k < m.row_begin[2]; ++k) sum += m.weight[static_cast<std::size_t>(k)];
  EXPECT_DOUBLE_EQ(sum, 1.0);
}

TEST(Resize, AxisTermsFollowTheReferenceNeighbourRule) {
  model::ResizeAttributes a;
  a.mode = model::ResizeMode::Cubic;
  a.transform = model::CoordinateTransform::Asymmetric;
  // Integral coordinates: a single term of weight 1 (the cubic kernel interpolates).
  const auto t = model::resize_axis_terms(4, 8, 2.0, 0, 1, a);
  ASSERT_EQ(t[2].size(), 1u);
  EXPECT_EQ(t[2][0].index, 1);
  EXPECT_DOUBLE_EQ(t[2][0].weight, 1.0);
  // x_ori = 0.5: positions -1, 0, 1, 2 with -1 clamped onto 0 (edge), weights summing to 1.
  double sum = 0;
  for (const auto& e : t[1]) sum += e.weight;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_EQ(t[1].size(), 3u);
}

TEST(Resize, RefusesWhatWouldChangeTheBatchOrAllocateWithoutBound) {
  EXPECT_THROW(resize({2, 1, 2, 2}, "nearest"), model::ModelError);            // dim 0 scaled
  EXPECT_THROW(resize({1, 1, 0.1f, 2}, "nearest"), model::ModelError);         // an empty output dim
  EXPECT_THROW(resize({1, 1, 1e7f, 1e7f}, "nearest"), model::ModelError);      // beyond the computed cap
  EXPECT_THROW(resize({1, 1, 2, 2}, "area"), model::ModelError);               // unknown mode
  ModelBuilder both(13);
  both.input("x", {1, 2, 2}).output("y");
  both.initializer("roi", {0}, {});
  both.initializer("scales", {4}, {1, 1, 2, 2});
  both.initializer_i64("sizes", {4}, {1, 1, 4, 4});
  both.node("Resize", {"x", "roi", "scales", "sizes"}, {"y"});
  EXPECT_THROW(both.load(), model::ModelError);
  ModelBuilder fixed_n(13);
  fixed_n.input("x", {1, 2, 2}).output("y");
  fixed_n.initializer("roi", {0}, {});
  fixed_n.initializer("scales", {0}, {});
  fixed_n.initializer_i64("sizes", {4}, {3, 1, 4, 4});  // a batch of 3 written into the model
  fixed_n.node("Resize", {"x", "roi", "scales", "sizes"}, {"y"});
  EXPECT_THROW(fixed_n.load(), model::ModelError);
}

}  // namespace
}  // namespace heinfer
