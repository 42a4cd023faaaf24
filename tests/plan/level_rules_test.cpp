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

// Lazy relinearization: a square read only by a dense layer with fewer outputs keeps its
// products (no depth); the dense layer rescales twice, so the total depth is unchanged.
// The same square read by a layer as wide as itself, or by a Relu round, is eager.
TEST(LevelRules, SquareBeforeANarrowerDenseLayerIsDeferred) {
  auto build = [](std::int64_t outputs, bool relu_reader) {
    ModelBuilder b;
    b.input("x", {16}).output("y");
    b.initializer("w", {outputs, 16}, std::vector<float>(static_cast<std::size_t>(outputs * 16), 0.25f));
    b.node("Mul", {"x", "x"}, {"sq"}, "square");
    b.node("Flatten", {"sq"}, {"f"}, "flatten");
    if (relu_reader) {
      b.node("Relu", {"f"}, {"r"}, "relu");
      test::attr(b.node("Gemm", {"r", "w"}, {"y"}, "gemm"), "transB", std::int64_t{1});
    } else {
      test::attr(b.node("Gemm", {"f", "w"}, {"y"}, "gemm"), "transB", std::int64_t{1});
    }
    return b.load();
  };
  {
    const model::Graph g = build(8, false);
    const plan::LevelRules r = plan::level_rules(g);
    const auto& sq = r.nodes[static_cast<std::size_t>(node_index(g, "square"))];
    const auto& gemm = r.nodes[static_cast<std::size_t>(node_index(g, "gemm"))];
    EXPECT_TRUE(sq.deferred_product);
    EXPECT_EQ(sq.output_depth, 0);
    EXPECT_TRUE(gemm.rescale_twice);
    EXPECT_EQ(gemm.input_depth, 0);
    EXPECT_EQ(gemm.output_depth, 2);
    const std::vector<double> bounds(g.tensors.size(), 1.0);
    EXPECT_EQ(plan::level_requirements(g, bounds).levels, 2);
  }
  {  // A Concat with a constant adds two-polynomial ciphertexts beside the products: eager.
    ModelBuilder b;
    b.input("x", {16}).output("y");
    b.initializer("c", {1, 4}, std::vector<float>(4, 1.0f));
    b.initializer("w", {4, 20}, std::vector<float>(80, 0.25f));
    b.node("Mul", {"x", "x"}, {"sq"}, "square");
    test::attr(b.node("Concat", {"sq", "c"}, {"cat"}, "concat"), "axis", std::int64_t{1});
    test::attr(b.node("Gemm", {"cat", "w"}, {"y"}, "gemm"), "transB", std::int64_t{1});
    const model::Graph g = b.load();
    const plan::LevelRules r = plan::level_rules(g);
    EXPECT_FALSE(r.nodes[static_cast<std::size_t>(node_index(g, "square"))].deferred_product);
  }
  for (const bool relu : {false, true}) {
    const model::Graph g = build(relu ? 8 : 16, relu);
    const plan::LevelRules r = plan::level_rules(g);
    const auto& sq = r.nodes[static_cast<std::size_t>(node_index(g, "square"))];
    EXPECT_FALSE(sq.deferred_product) << (relu ? "relu reader" : "as many outputs");
    EXPECT_EQ(sq.output_depth, 1);
    EXPECT_FALSE(r.nodes[static_cast<std::size_t>(node_index(g, "gemm"))].rescale_twice);
  }
}

}  // namespace
}  // namespace heinfer
