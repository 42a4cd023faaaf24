// Refresh points: a chain of products deeper than any secure ring gets exact identities
// Relu(x) - Relu(-x) (two masked rounds) until no node computes deeper than the budget;
// a non-negative tensor that sets the depth gets a Relu round (one level less). The
// plaintext outputs are unchanged and the encrypted run matches them.
#include <gtest/gtest.h>

#include <filesystem>

#include "encrypted_test_util.h"
#include "model/load.h"
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
  EXPECT_EQ(plan::insert_refresh_rounds(g, plan::RoundMasks::PerWindow).total(), 0);
  EXPECT_EQ(g.nodes.size(), nodes);
}

TEST(RefreshRounds, DeepChainsGetExactIdentitiesWithinTheBudget) {
  const model::Graph original = product_chain(16);
  ASSERT_GT(deepest(original), plan::kMaxDepthWithoutRefresh);
  for (const plan::RoundMasks masks : {plan::RoundMasks::PerWindow, plan::RoundMasks::PerSample}) {
    model::Graph g = original;
    const int inserted = plan::insert_refresh_rounds(g, masks).two_round;
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

/// x -> Conv (3x3, 2 -> 4) -> Relu -> `pool` -> Flatten -> Gemm (4 -> 3) -> y; with
/// `conv_after_relu` a second Conv between the Relu and the pool (values of both signs).
model::Graph pooled_classifier(const char* pool, bool conv_after_relu = false) {
  ModelBuilder b;
  b.input("x", {2, 4, 4}).output("y");
  std::vector<float> w(72);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = (i % 3 == 0 ? -0.2f : 0.15f);
  b.initializer("w", {4, 2, 3, 3}, w);
  b.initializer("w2", {4, 4, 1, 1}, {0.5f, -1, 0.25f, 0.75f, -0.5f, 1, 0.5f, -0.25f, 1, 1, -1, 0.5f, 0.25f, 0.5f, 0.75f, -1});
  b.initializer("fw", {3, 4}, {0.5f, -0.25f, 0.125f, 1, -0.5f, 0.25f, 0.75f, -1, 0.3f, 0.3f, -0.3f, 0.6f});
  attr(b.node("Conv", {"x", "w"}, {"c"}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c"}, {"r"});
  std::string pooled_input = "r";
  if (conv_after_relu) {
    b.node("Conv", {"r", "w2"}, {"c2"});
    pooled_input = "c2";
  }
  auto& p = b.node(pool, {pooled_input}, {"p"});
  if (std::string(pool) != "GlobalAveragePool") attr(p, "kernel_shape", std::vector<std::int64_t>{4, 4});
  b.node("Flatten", {"p"}, {"f"});
  attr(b.node("Gemm", {"f", "fw"}, {"y"}), "transB", std::int64_t{1});
  return b.load();
}

TEST(RefreshRounds, NonNegativeTensorsAreKnownByConstruction) {
  const model::Graph g = pooled_classifier("GlobalAveragePool");
  const auto nonneg = plan::nonnegative_tensors(g);
  auto of = [&](const char* name) {
    for (std::size_t t = 0; t < g.tensors.size(); ++t) {
      if (g.tensors[t].name == name) return static_cast<bool>(nonneg[t]);
    }
    ADD_FAILURE() << name;
    return false;
  };
  EXPECT_FALSE(of("x"));  // a graph input
  EXPECT_FALSE(of("c"));  // a Conv output
  EXPECT_TRUE(of("r"));
  EXPECT_TRUE(of("p"));
  EXPECT_TRUE(of("f"));
  EXPECT_FALSE(of("y"));
  const auto mixed = plan::nonnegative_tensors(pooled_classifier("GlobalAveragePool", true));
  const model::Graph gm = pooled_classifier("GlobalAveragePool", true);
  for (std::size_t t = 0; t < gm.tensors.size(); ++t) {
    if (gm.tensors[t].name == "p") {
      EXPECT_FALSE(mixed[t]);  // pooled Conv outputs can be negative
    }
  }
}

// Pool -> Flatten -> Gemm after a Relu needs two levels (the pool folds the round's
// pending factors, the Gemm multiplies again); a Relu round on the pooled values, which
// are >= 0, is exact and leaves one level for the whole model.
TEST(RefreshRounds, APooledNonNegativeTensorIsRefreshedWithOneRound) {
  for (const char* pool : {"GlobalAveragePool", "AveragePool", "MaxPool"}) {
    const model::Graph original = pooled_classifier(pool);
    model::Graph g = original;
    const int before = deepest(g);
    EXPECT_EQ(plan::insert_refresh_rounds(g, plan::RoundMasks::PerWindow).total(), 0);  // not too deep
    const int inserted = plan::insert_nonnegative_refreshes(g, plan::RoundMasks::PerWindow);
    if (std::string(pool) == "MaxPool") {  // a MaxPool round already returns fresh ciphertexts
      EXPECT_EQ(before, 1);
      EXPECT_EQ(inserted, 0);
      continue;
    }
    EXPECT_EQ(before, 2) << pool;
    EXPECT_EQ(inserted, 1) << pool;
    EXPECT_EQ(deepest(g), 1) << pool;
    const auto x = test::random_input({2, 4, 4}, 64, 11);
    EXPECT_EQ(runtime::run_plain(g, {x})[0].data, runtime::run_plain(original, {x})[0].data);  // exact
    const auto c = test::compare(g, x, ckks::Packing::Complex, 2048);
    EXPECT_LE(c.max_abs_error, 1e-3 * (1 + c.max_abs_plain)) << pool;
    EXPECT_EQ(c.stats.rounds, 2) << pool;  // the Relu's and the refresh's
    // One level: the chain has one rescaling prime beyond q_0's.
    const auto plan = test::test_plan(g, x, ckks::Packing::Complex);
    EXPECT_EQ(plan.needs.levels, 1) << pool;
  }
}

TEST(RefreshRounds, TensorsOfBothSignsAreNotRefreshedWithARelu) {
  model::Graph g = pooled_classifier("GlobalAveragePool", true);
  const int before = deepest(g);
  EXPECT_EQ(plan::insert_nonnegative_refreshes(g, plan::RoundMasks::PerWindow), 0);
  EXPECT_EQ(deepest(g), before);
}

// A level less puts masked values at level 0, so q_0 grows by the mask's ~12 bits: the
// refresh is kept only when the parameters get cheaper. Classifier logits of ~2^10 need a
// q_0 of two primes at two levels ({26, 25, 30, 30}); refreshed, the pooled values are
// small and q_0 two primes at one level: three limbs instead of four. The Fashion-MNIST
// CNN's {47, 30, 30} and the refreshed {29, 29, 30} are three limbs either way: kept only
// when 32-bit words store the refreshed chain in fewer words (a budgeted run).
TEST(RefreshRounds, ANonNegativeRefreshIsKeptWhereTheParametersGetCheaper) {
  ModelBuilder b;
  b.input("x", {2, 4, 4}).output("y");
  b.initializer("w", {4, 2, 3, 3}, std::vector<float>(72, 0.1f));
  b.initializer("fw", {3, 4}, std::vector<float>(12, 400.0f));
  attr(b.node("Conv", {"x", "w"}, {"c"}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c"}, {"r"});
  b.node("GlobalAveragePool", {"r"}, {"p"});
  b.node("Flatten", {"p"}, {"f"});
  attr(b.node("Gemm", {"f", "fw"}, {"y"}), "transB", std::int64_t{1});
  model::Graph g = b.load();
  const auto x = test::random_input({2, 4, 4}, 16, 3, 0, 1);
  const auto ranges = runtime::calibrate_ranges(g, {x});
  const plan::ParameterOptions o;
  const auto without = plan::plan_parameters(g, ranges, o);
  EXPECT_EQ(without.params.coeff_bits().size(), 4u);
  int inserted = -1;
  const auto with = plan::plan_with_refreshes(g, ranges, o, 64, &inserted);
  EXPECT_EQ(inserted, 1);
  EXPECT_EQ(with.params.coeff_bits().size(), 3u);
  EXPECT_EQ(deepest(g), 1);
  EXPECT_EQ(with.bounds.size(), g.tensors.size());  // the refresh's output has a bound
  const auto c = test::compare(g, x, ckks::Packing::Complex, 2048);
  EXPECT_LE(c.max_abs_error, 1e-3 * (1 + c.max_abs_plain));

  const model::Graph cnn = model::load_model(std::filesystem::path(HEINFER_SOURCE_DIR) / "models" / "fmnist_cnn.onnx");
  const auto cx = test::random_input({1, 28, 28}, 16, 4, 0, 1);
  const auto cr = runtime::calibrate_ranges(cnn, {cx});
  for (const int words : {64, 32}) {
    model::Graph h = cnn;
    const auto p = plan::plan_with_refreshes(h, cr, o, words, &inserted);
    EXPECT_EQ(p.params.coeff_bits().size(), 3u) << words;
    EXPECT_EQ(inserted, words == 32 ? 1 : 0) << words;
    EXPECT_EQ(h.nodes.size(), cnn.nodes.size() + static_cast<std::size_t>(inserted));
  }
}

}  // namespace
}  // namespace heinfer
