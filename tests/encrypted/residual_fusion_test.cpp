// A ResNet v1 basic block under encryption: the residual Add fused into its Conv
// (model/residual_fusion.h) folds the skip's pending unmasking factors into the same
// multiply-accumulate, and the pooled features' refresh (plan/refresh_rounds.h) leaves
// the classifier on fresh ciphertexts: one level for the whole model instead of two.
#include <gtest/gtest.h>

#include "encrypted_test_util.h"
#include "plan/level_rules.h"
#include "plan/refresh_rounds.h"

namespace heinfer {
namespace {

using test::attr;
using test::ModelBuilder;

/// x -> Conv -> Relu r -> Conv -> Relu -> Conv c -> Add(c, r) -> Relu -> GlobalAveragePool
/// -> Flatten -> Gemm -> y (4 channels, 6x6).
ModelBuilder basic_block() {
  ModelBuilder b;
  b.input("x", {3, 6, 6}).output("y");
  const auto w0 = test::random_floats(4 * 3 * 9, 3, -0.3f, 0.3f);
  const auto w1 = test::random_floats(4 * 4 * 9, 4, -0.3f, 0.3f);
  const auto w2 = test::random_floats(4 * 4 * 9, 5, -0.3f, 0.3f);
  b.initializer("w0", {4, 3, 3, 3}, w0);
  b.initializer("w1", {4, 4, 3, 3}, w1);
  b.initializer("w2", {4, 4, 3, 3}, w2);
  b.initializer("fw", {5, 4}, test::random_floats(20, 6));
  const std::vector<std::int64_t> pads{1, 1, 1, 1};
  attr(b.node("Conv", {"x", "w0"}, {"c0"}), "pads", pads);
  b.node("Relu", {"c0"}, {"r"});
  attr(b.node("Conv", {"r", "w1"}, {"c1"}), "pads", pads);
  b.node("Relu", {"c1"}, {"r1"});
  attr(b.node("Conv", {"r1", "w2"}, {"c"}), "pads", pads);
  b.node("Add", {"c", "r"}, {"s"});
  b.node("Relu", {"s"}, {"o"});
  b.node("GlobalAveragePool", {"o"}, {"p"});
  b.node("Flatten", {"p"}, {"f"});
  attr(b.node("Gemm", {"f", "fw"}, {"y"}), "transB", std::int64_t{1});
  return b;
}

int deepest(const model::Graph& g) {
  int d = 0;
  for (const auto& n : plan::level_rules(g).nodes) d = std::max({d, n.input_depth, n.output_depth});
  return d;
}

TEST(ResidualFusion, ABasicBlockRunsOnOneLevelAndMatchesPlaintext) {
  model::LoadOptions unfused;
  unfused.fuse_residual = false;
  model::Graph plain_add = basic_block().load(unfused);
  plan::insert_refresh_rounds(plain_add, plan::RoundMasks::PerWindow);
  EXPECT_EQ(deepest(plain_add), 2);  // the Add folds the skip's factors after the Conv's rescale

  model::Graph g = basic_block().load();
  EXPECT_EQ(plan::insert_nonnegative_refreshes(g, plan::RoundMasks::PerWindow), 1);
  EXPECT_EQ(deepest(g), 1);
  const auto x = test::random_input({3, 6, 6}, 128, 9);
  // The fused graph computes the same function.
  const auto a = runtime::run_plain(g, {x})[0].data, b = runtime::run_plain(plain_add, {x})[0].data;
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12);
  const auto c = test::compare(g, x, ckks::Packing::Complex, 2048);
  EXPECT_LE(c.max_abs_error, 1e-3 * (1 + c.max_abs_plain));
  EXPECT_EQ(c.stats.rounds, 4);  // three Relu rounds and the refresh
  EXPECT_EQ(test::test_plan(g, x, ckks::Packing::Complex).needs.levels, 1);
}

}  // namespace
}  // namespace heinfer
