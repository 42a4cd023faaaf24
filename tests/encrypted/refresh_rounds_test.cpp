// Refresh points: a chain of products deeper than any secure ring gets exact identities
// Relu(x) - Relu(-x) (two masked rounds) until no node computes deeper than the budget;
// the plaintext outputs are unchanged and the encrypted run matches them.
#include <gtest/gtest.h>

#include "encrypted_test_util.h"
#include "plan/level_rules.h"
#include "plan/refresh_rounds.h"

namespace heinfer {
namespace {

using test::attr;
using test::ModelBuilder;

/// h <- 0.5 h^2 + 0.3, `steps` times after a Gemm: two levels per step (the square and
/// the scale), values in [0.3, 0.8] for inputs in [-1, 1].
model::Graph product_chain(int steps) {
  ModelBuilder b;
  b.input("x", {4}).output("y");
  b.initializer("w", {4, 4}, {0.25f, 0, 0, 0, 0, 0.25f, 0, 0, 0, 0, 0.25f, 0, 0, 0, 0, 0.25f});
  attr(b.node("Gemm", {"x", "w"}, {"h0"}), "transB", std::int64_t{1});
  b.initializer("half", {}, {0.5f});
  b.initializer("shift", {}, {0.3f});
  for (int i = 0; i < steps; ++i) {
    const std::string h = std::string("h").append(std::to_string(i));
    const std::string n = std::string("h").append(std::to_string(i + 1));
    b.node("Mul", {h, h}, {h + "_sq"});
    b.node("Mul", {h + "_sq", "half"}, {h + "_scaled"});
    b.node("Add", {h + "_scaled", "shift"}, {i + 1 == steps ? std::string("y") : n});
  }
  return b.load();
}

int deepest(const model::Graph& g) {
  int d = 0;
  for (const auto& n : plan::level_rules(g).nodes) d = std::max({d, n.input_depth, n.output_depth});
  return d;
}

TEST(RefreshRounds, ShallowModelsAreLeftAsTheyAre) {
  model::Graph g = product_chain(5);
  const std::size_t nodes = g.nodes.size();
  EXPECT_EQ(plan::insert_refresh_rounds(g, plan::RoundMasks::PerWindow), 0);
  EXPECT_EQ(g.nodes.size(), nodes);
}

TEST(RefreshRounds, DeepChainsGetExactIdentitiesWithinTheBudget) {
  const model::Graph original = product_chain(16);
  ASSERT_GT(deepest(original), plan::kMaxDepthWithoutRefresh);
  for (const plan::RoundMasks masks : {plan::RoundMasks::PerWindow, plan::RoundMasks::PerSample}) {
    model::Graph g = original;
    const int inserted = plan::insert_refresh_rounds(g, masks);
    EXPECT_GT(inserted, 0);
    int depth = 0;
    for (const auto& n : plan::level_rules(g, masks).nodes) depth = std::max({depth, n.input_depth, n.output_depth});
    EXPECT_LE(depth, plan::kRefreshDepth);
    const auto x = test::random_input({4}, 64, 7);
    EXPECT_EQ(runtime::run_plain(g, {x})[0].data, runtime::run_plain(original, {x})[0].data);  // exact
    const bool per_sample = masks == plan::RoundMasks::PerSample;
    const auto c = test::compare(g, x, per_sample ? ckks::Packing::Real : ckks::Packing::Complex, 2048, masks);
    EXPECT_LE(c.max_abs_error, 1e-3 * (1 + c.max_abs_plain));
    EXPECT_EQ(c.stats.rounds, 2 * inserted);
  }
}

}  // namespace
}  // namespace heinfer
