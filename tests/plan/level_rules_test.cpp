// plan::level_rules on hand-built graphs: the depth of every node as the executor runs it
// (pending unmasking factors included), and level_requirements from it.
#include <gtest/gtest.h>

#include <cmath>

#include "../common/depth_model.h"
#include "../common/onnx_builder.h"
#include "plan/level_rules.h"
#include "plan/parameters.h"

namespace heinfer {
namespace {

using plan::NodeKind;
using test::ModelBuilder;

using test::node_index;

TEST(LevelRules, DepthsWithPendingFactors) {
  const model::Graph g = test::depth_model().load();
  const plan::LevelRules r = plan::level_rules(g);
  auto at = [&](const char* name) { return r.nodes[static_cast<std::size_t>(node_index(g, name))]; };
  EXPECT_EQ(at("conv").output_depth, 1);        // weight 0.5: one rescale
  EXPECT_EQ(at("square1").output_depth, 2);     // a square: +1, scale no longer Δ
  EXPECT_EQ(at("add_const").output_depth, 2);   // an addition: no rescale
  EXPECT_EQ(at("relu").kind, NodeKind::Relu);
  EXPECT_EQ(at("relu").input_depth, 2);         // the client decrypts at depth 2
  EXPECT_EQ(at("relu").output_depth, 0);        // fresh, with pending factors 1/R
  EXPECT_EQ(at("flatten").output_depth, 0);     // shares the round's ciphertexts
  EXPECT_EQ(at("gemm").output_depth, 1);        // folds the factors into its weights
  EXPECT_EQ(at("scale").output_depth, 2);
  // The residual reads the flatten's factors: it rescales although it only adds.
  EXPECT_TRUE(at("residual").rescale);
  EXPECT_EQ(at("residual").input_depth, 2);
  EXPECT_EQ(at("residual").output_depth, 3);
  EXPECT_EQ(at("square2").output_depth, 4);
  EXPECT_EQ(at("softmax").kind, NodeKind::FinalSoftmax);
  EXPECT_EQ(at("softmax").input_depth, 4);
  EXPECT_EQ(at("softmax").output_depth, -1);
  const std::vector<double> bounds(g.tensors.size(), 1.0);
  EXPECT_EQ(plan::level_requirements(g, bounds).levels, 4);
}

TEST(LevelRules, MixedScalesAndMaxPoolFactorsAreMaterialized) {
  ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y").output("r");  // r also an output: the Relu is not fused
  b.initializer("w", {1, 1, 1, 1}, {0.5f});
  b.node("Mul", {"x", "x"}, {"sq"}, "square");        // depth 1, scale not Δ
  b.node("Conv", {"x", "w"}, {"c"}, "conv");          // depth 1, scale Δ
  b.node("Add", {"sq", "c"}, {"a"}, "add");           // sq brought to Δ first: depth 2
  b.node("Relu", {"a"}, {"r"}, "relu");               // factors
  auto& mp = b.node("MaxPool", {"r"}, {"y"}, "pool");  // factors materialized first
  test::attr(mp, "kernel_shape", std::vector<std::int64_t>{2, 2});
  test::attr(mp, "strides", std::vector<std::int64_t>{2, 2});
  const model::Graph g = b.load();
  const plan::LevelRules r = plan::level_rules(g);
  const auto& add = r.nodes[static_cast<std::size_t>(node_index(g, "add"))];
  ASSERT_EQ(add.materialized.size(), 2u);
  EXPECT_TRUE(add.materialized[0]);
  EXPECT_FALSE(add.materialized[1]);
  EXPECT_EQ(add.input_depth, 2);
  EXPECT_EQ(add.output_depth, 2);  // no weights, no factors: an addition
  const auto& pool = r.nodes[static_cast<std::size_t>(node_index(g, "pool"))];
  EXPECT_EQ(pool.kind, NodeKind::MaxPool);
  EXPECT_EQ(pool.input_depth, 1);   // the Relu's factors applied: +1
  EXPECT_EQ(pool.output_depth, 0);
}

TEST(LevelRules, PerSampleMasksUnmaskWithOneLevelPerRound) {
  const model::Graph g = test::depth_model().load();
  const plan::LevelRules r = plan::level_rules(g, plan::RoundMasks::PerSample);
  auto at = [&](const char* name) { return r.nodes[static_cast<std::size_t>(node_index(g, name))]; };
  EXPECT_EQ(at("relu").input_depth, 2);
  EXPECT_TRUE(at("relu").rescale);
  EXPECT_EQ(at("relu").output_depth, 1);  // fresh replies, unmasked by a product and rescale
  EXPECT_EQ(at("flatten").output_depth, 1);
  EXPECT_EQ(at("gemm").output_depth, 2);
  EXPECT_EQ(at("softmax").input_depth, 5);
  const std::vector<double> bounds(g.tensors.size(), 1.0);
  const auto pw = plan::level_requirements(g, bounds), ps = plan::level_requirements(g, bounds, plan::RoundMasks::PerSample);
  EXPECT_EQ(ps.levels, pw.levels + 1);
  // The client sees up to 2^15 × the value instead of 2^12 (the Relu decrypts at depth 2,
  // not the deepest level here, so q_0 is not driven by it).
  EXPECT_GT(plan::mask_max(plan::RoundMasks::PerSample), 32768.0);
  EXPECT_EQ(plan::mask_max(plan::RoundMasks::PerWindow), plan::kMaskMax);
  EXPECT_EQ(plan::parse_round_masks("per-sample"), plan::RoundMasks::PerSample);
  EXPECT_THROW(plan::parse_round_masks("per-slot"), std::invalid_argument);
}

}  // namespace
}  // namespace heinfer
