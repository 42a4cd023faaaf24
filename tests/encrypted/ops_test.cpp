// Encrypted executor vs plaintext executor on small hand-built graphs, one per op class.
#include <gtest/gtest.h>

#include "encrypted_test_util.h"
#include "plan/level_rules.h"

namespace heinfer {
namespace {

using ckks::Packing;
using test::attr;
using test::compare;
using test::ModelBuilder;
using test::random_floats;
using test::random_input;

constexpr std::int64_t kBatch = 37;  // not a power of two: partially filled slots

void expect_close(const test::Comparison& c, double tol = 1e-3) {
  ASSERT_EQ(c.encrypted.size(), c.plain.size());
  EXPECT_LE(c.max_abs_error, tol * (1.0 + c.max_abs_plain)) << "max |plain| " << c.max_abs_plain;
  EXPECT_GT(c.max_abs_plain, 0.0);
}

TEST(EncryptedOps, ConvWithStridesPadsDilationAndGemm) {
  ModelBuilder b;
  b.input("x", {2, 7, 7}).output("y");
  b.initializer("w", {3, 2, 3, 3}, random_floats(54, 1));
  b.initializer("b", {3}, random_floats(3, 2));
  auto& c = b.node("Conv", {"x", "w", "b"}, {"c"});
  attr(c, "pads", std::vector<std::int64_t>{1, 0, 2, 1});
  attr(c, "strides", std::vector<std::int64_t>{2, 1});
  attr(c, "dilations", std::vector<std::int64_t>{1, 2});
  b.node("Flatten", {"c"}, {"f"});
  b.initializer("w2", {4, 3 * 4 * 4}, random_floats(4 * 48, 3));
  b.initializer("b2", {4}, random_floats(4, 4));
  attr(b.node("Gemm", {"f", "w2", "b2"}, {"y"}), "transB", std::int64_t{1});
  const auto g = b.load();
  expect_close(compare(g, random_input({2, 7, 7}, kBatch, 5), ckks::Packing::Complex));
}

TEST(EncryptedOps, DepthwiseConvBatchNormResidualAddAveragePool) {
  ModelBuilder b;
  b.input("x", {3, 6, 6}).output("y");
  b.initializer("w", {3, 1, 3, 3}, random_floats(27, 11));
  auto& c = b.node("Conv", {"x", "w"}, {"c"});
  attr(c, "group", std::int64_t{3});
  attr(c, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.initializer("s", {3}, {0.5f, 1.5f, -2.0f});
  b.initializer("bb", {3}, {0.1f, -0.2f, 0.3f});
  b.initializer("m", {3}, {0.0f, 0.1f, -0.1f});
  b.initializer("v", {3}, {1.0f, 2.0f, 0.5f});
  b.node("BatchNormalization", {"c", "s", "bb", "m", "v"}, {"n"});
  b.initializer("w1", {3, 3, 1, 1}, random_floats(9, 12));
  b.node("Conv", {"x", "w1"}, {"c1"});
  b.node("Add", {"n", "c1"}, {"a"});  // two encrypted tensors
  b.node("Sub", {"a", "c1"}, {"s2"});
  auto& p = b.node("AveragePool", {"s2"}, {"p"});
  attr(p, "kernel_shape", std::vector<std::int64_t>{3, 3});
  attr(p, "strides", std::vector<std::int64_t>{2, 2});
  attr(p, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("GlobalAveragePool", {"p"}, {"y"});
  model::LoadOptions keep;
  keep.fold_batchnorm = false;
  const auto g = b.load(keep);
  bool has_bn = false;
  for (const auto& n : g.nodes) has_bn = has_bn || n.op == model::OpType::BatchNormalization;
  EXPECT_TRUE(has_bn);
  expect_close(compare(g, random_input({3, 6, 6}, kBatch, 13), ckks::Packing::Complex));
}

ModelBuilder square_net() {
  ModelBuilder b;
  b.input("x", {6}).output("y");
  b.initializer("w", {5, 6}, random_floats(30, 21));
  attr(b.node("Gemm", {"x", "w"}, {"h"}), "transB", std::int64_t{1});
  b.node("Mul", {"h", "h"}, {"sq"});
  b.initializer("two", {1}, {2.0f});
  b.node("Pow", {"sq", "two"}, {"y"});
  return b;
}

TEST(EncryptedOps, SquareWithComplexPacking) {
  const auto g = square_net().load();
  const auto c = compare(g, random_input({6}, kBatch, 22), ckks::Packing::Complex);
  expect_close(c);
}

TEST(EncryptedOps, SquareWithRealPacking) {
  const auto g = square_net().load();
  expect_close(compare(g, random_input({6}, kBatch, 23), ckks::Packing::Real));
}

// Lazy relinearization: two squares each read by a narrower dense layer (through a
// Flatten for the first) keep their products as three polynomials; the dense layers
// relinearize and rescale twice. The plan must defer them, or this tests the eager path.
TEST(EncryptedOps, DeferredSquaresBeforeDenseLayersMatchPlaintext) {
  ModelBuilder b;
  b.input("x", {2, 3, 3}).output("y");
  b.node("Mul", {"x", "x"}, {"sq1"});
  b.node("Flatten", {"sq1"}, {"f"});
  b.initializer("w1", {6, 18}, random_floats(108, 41));
  attr(b.node("Gemm", {"f", "w1"}, {"h"}), "transB", std::int64_t{1});
  b.node("Mul", {"h", "h"}, {"sq2"});
  b.initializer("w2", {3, 6}, random_floats(18, 42));
  b.initializer("b2", {3}, random_floats(3, 43));
  attr(b.node("Gemm", {"sq2", "w2", "b2"}, {"y"}), "transB", std::int64_t{1});
  const auto g = b.load();
  const auto rules = plan::level_rules(g);
  int deferred = 0, twice = 0;
  for (const auto& nl : rules.nodes) {
    deferred += nl.deferred_product ? 1 : 0;
    twice += nl.rescale_twice ? 1 : 0;
  }
  EXPECT_EQ(deferred, 2);
  EXPECT_EQ(twice, 2);
  for (const auto packing : {ckks::Packing::Complex, ckks::Packing::Real}) {
    const auto c = compare(g, random_input({2, 3, 3}, kBatch, 44), packing);
    EXPECT_EQ(c.stats.layers.size(), g.nodes.size());
    expect_close(c);
  }
}

model::Graph round_net() {
  ModelBuilder b;
  b.input("x", {8}).output("y");
  b.initializer("w", {8, 8}, random_floats(64, 31, -2, 2));
  attr(b.node("Gemm", {"x", "w"}, {"h"}), "transB", std::int64_t{1});
  b.node("Relu", {"h"}, {"r"});
  b.initializer("w2", {8, 8}, random_floats(64, 32, -2, 2));
  attr(b.node("Gemm", {"r", "w2"}, {"h2"}), "transB", std::int64_t{1});
  b.initializer("lo", {}, {0.0f});
  b.initializer("hi", {}, {1.5f});
  b.node("Clip", {"h2", "lo", "hi"}, {"c"});  // ReLU6-style, two masked values per element
  b.initializer("w3", {8, 8}, random_floats(64, 33, -2, 2));
  attr(b.node("Gemm", {"c", "w3"}, {"h3"}), "transB", std::int64_t{1});
  attr(b.node("LeakyRelu", {"h3"}, {"l"}), "alpha", 0.1f);
  b.initializer("w4", {8, 8}, random_floats(64, 35, -2, 2));
  attr(b.node("Gemm", {"l", "w4"}, {"h4"}), "transB", std::int64_t{1});
  b.initializer("lo2", {}, {-0.5f});
  b.node("Clip", {"h4", "lo2"}, {"c2"});  // lower bound only
  b.initializer("w5", {8, 8}, random_floats(64, 36, -2, 2));
  attr(b.node("Gemm", {"c2", "w5"}, {"h5"}), "transB", std::int64_t{1});
  b.node("Clip", {"h5", "", "hi"}, {"y"});  // upper bound only
  return b.load();
}

TEST(EncryptedOps, ReluClipLeakyReluRounds) {
  const auto c = compare(round_net(), random_input({8}, kBatch, 34), ckks::Packing::Complex);
  expect_close(c);
  EXPECT_EQ(c.stats.rounds, 5);
}

TEST(EncryptedOps, ReluClipLeakyReluRoundsWithPerSampleMasks) {
  // |·| forms of every function (runtime/steps/sample_masked_round.cpp), one level each.
  const auto g = round_net();
  const auto c = compare(g, random_input({8}, kBatch, 34), ckks::Packing::Real, 2048, plan::RoundMasks::PerSample);
  expect_close(c);
  EXPECT_EQ(c.stats.rounds, 5);
  const auto pw = test::test_plan(g, random_input({8}, kBatch, 34), ckks::Packing::Real);
  const auto ps = test::test_plan(g, random_input({8}, kBatch, 34), ckks::Packing::Real, 0, plan::RoundMasks::PerSample);
  // Every segment is one unmasking rescale + one Gemm; per-window masks recombine
  // LeakyRelu and one-sided Clip with x at its own level, so levels add up there.
  EXPECT_EQ(ps.needs.levels, 2);
  EXPECT_EQ(pw.needs.levels, 4);
  EXPECT_THROW(test::test_plan(g, random_input({8}, kBatch, 34), ckks::Packing::Complex, 0, plan::RoundMasks::PerSample),
               std::invalid_argument);
}

TEST(EncryptedOps, FusedReluMaxPoolAndPaddedMaxPool) {
  const auto c = compare(test::max_pool_net(), random_input({2, 6, 6}, kBatch, 43), ckks::Packing::Complex);
  expect_close(c);
  EXPECT_EQ(c.stats.rounds, 2);  // Relu fused into the first MaxPool round
}

TEST(EncryptedOps, FusedReluMaxPoolAndPaddedMaxPoolWithPerSampleMasks) {
  const auto c = compare(test::max_pool_net(), random_input({2, 6, 6}, kBatch, 43), ckks::Packing::Real, 2048,
                         plan::RoundMasks::PerSample);
  expect_close(c);
  EXPECT_EQ(c.stats.rounds, 2);
}

TEST(EncryptedOps, PadConcatTransposeFlattenSoftmax) {
  ModelBuilder b;
  b.input("x", {2, 3}).output("y");
  b.initializer_i64("pads", {6}, {0, 0, 1, 0, 0, 2});
  b.node("Pad", {"x", "pads"}, {"p"});  // [2, 6] with zeros
  b.initializer_i64("pads2", {6}, {0, 1, 0, 0, 0, 0});
  b.initializer("val", {}, {0.75f});
  b.node("Pad", {"x", "pads2", "val"}, {"p2"});  // [3, 3], a non-zero constant row
  b.node("Flatten", {"p2"}, {"f2"});
  b.node("Flatten", {"p"}, {"f1"});
  attr(b.node("Concat", {"f1", "f2"}, {"cat"}), "axis", std::int64_t{1});
  b.initializer("w", {4, 21}, random_floats(84, 51));
  attr(b.node("Gemm", {"cat", "w"}, {"g"}), "transB", std::int64_t{1});
  b.initializer_i64("shape", {3}, {0, 2, 2});
  b.node("Reshape", {"g", "shape"}, {"rs"});
  attr(b.node("Transpose", {"rs"}, {"t"}), "perm", std::vector<std::int64_t>{0, 2, 1});
  b.node("Flatten", {"t"}, {"tf"});
  attr(b.node("Softmax", {"tf"}, {"y"}), "axis", std::int64_t{-1});
  const auto g = b.load();
  const auto c = compare(g, random_input({2, 3}, kBatch, 52), ckks::Packing::Complex);
  expect_close(c);
}

TEST(EncryptedOps, InputsAtDifferentLevelsAreAligned) {
  // Concat and Sub of a fresh tensor (top level) and a Gemm output (one level lower).
  ModelBuilder b;
  b.input("x", {4}).output("y");
  b.initializer("w", {4, 4}, random_floats(16, 81));
  attr(b.node("Gemm", {"x", "w"}, {"h"}), "transB", std::int64_t{1});
  b.node("Sub", {"h", "x"}, {"d"});
  attr(b.node("Concat", {"d", "x"}, {"c"}), "axis", std::int64_t{1});
  b.initializer("w2", {3, 8}, random_floats(24, 82));
  attr(b.node("Gemm", {"c", "w2"}, {"y"}), "transB", std::int64_t{1});
  const auto g = b.load();
  expect_close(compare(g, random_input({4}, kBatch, 83), ckks::Packing::Complex));
}

TEST(EncryptedOps, AddOfSquareAndLinearTensorsWithDifferentScales) {
  // x^2 (scale ≈ 4Δ²/q) + Gemm(x) (scale Δ): the square's output is brought to Δ first.
  ModelBuilder b;
  b.input("x", {4}).output("y");
  b.initializer("w", {4, 4}, random_floats(16, 91));
  attr(b.node("Gemm", {"x", "w"}, {"h"}), "transB", std::int64_t{1});
  b.node("Mul", {"x", "x"}, {"sq"});
  b.node("Add", {"sq", "h"}, {"a"});
  b.initializer("w2", {3, 4}, random_floats(12, 92));
  attr(b.node("Gemm", {"a", "w2"}, {"y"}), "transB", std::int64_t{1});
  const auto g = b.load();
  for (ckks::Packing p : {ckks::Packing::Complex, ckks::Packing::Real}) expect_close(compare(g, random_input({4}, kBatch, 93), p));
}

TEST(EncryptedOps, ProductOfTwoActivationsWithBroadcasting) {
  // A squeeze-and-excitation gate: h [4, 3, 3] times relu(W . mean(h)) [4, 1, 1] (the gate
  // broadcast over the spatial dims), then a product of two different Gemm outputs.
  ModelBuilder b;
  b.input("x", {2, 3, 3}).output("y");
  b.initializer("w", {4, 2, 1, 1}, random_floats(8, 101));
  b.node("Conv", {"x", "w"}, {"h"});
  b.node("GlobalAveragePool", {"h"}, {"m"});
  b.initializer("w2", {4, 4, 1, 1}, random_floats(16, 102));
  b.node("Conv", {"m", "w2"}, {"s"});
  b.node("Relu", {"s"}, {"gate"});
  b.node("Mul", {"h", "gate"}, {"se"});
  b.node("Flatten", {"se"}, {"f"});
  b.initializer("w3", {3, 36}, random_floats(108, 103));
  attr(b.node("Gemm", {"f", "w3"}, {"p"}), "transB", std::int64_t{1});
  b.initializer("w4", {3, 36}, random_floats(108, 104));
  attr(b.node("Gemm", {"f", "w4"}, {"q"}), "transB", std::int64_t{1});
  b.node("Mul", {"p", "q"}, {"y"});
  const auto g = b.load();
  int products = 0;
  for (const auto& n : g.nodes) products += std::holds_alternative<model::ProductParams>(n.params) ? 1 : 0;
  EXPECT_EQ(products, 2);
  for (ckks::Packing p : {ckks::Packing::Complex, ckks::Packing::Real}) {
    expect_close(compare(g, random_input({2, 3, 3}, kBatch, 105), p));
  }
}

/// Gemm [n x n] then Pow by `exponent` (shape `exponent_dims`): checks the plaintext
/// executor against std::pow of the Gemm's outputs (exponent element i % n for the batch-
/// major output i) and the encrypted run against the plaintext one.
void expect_power(std::int64_t n, const std::vector<std::int64_t>& exponent_dims, const std::vector<float>& exponent,
                  std::uint32_t seed) {
  auto gemm = [&](const std::string& out) {
    ModelBuilder b;
    b.input("x", {n}).output(out);
    b.initializer("w", {n, n}, random_floats(static_cast<std::size_t>(n * n), seed));
    attr(b.node("Gemm", {"x", "w"}, {"h"}), "transB", std::int64_t{1});
    return b;
  };
  ModelBuilder b = gemm("y");
  b.initializer("e", exponent_dims, exponent);
  b.node("Pow", {"h", "e"}, {"y"});
  const auto g = b.load();
  for (const auto& node : g.nodes) EXPECT_NE(node.op, model::OpType::Pow) << "expanded into products";
  const auto x = random_input({n}, kBatch, seed + 1);
  const auto c = compare(g, x, ckks::Packing::Complex);
  const auto h = runtime::to_batch_major(runtime::run_plain(gemm("h").load(), {x})[0]);
  for (std::size_t i = 0; i < h.size(); ++i) {
    const double e = exponent.size() == 1 ? exponent[0] : exponent[i % static_cast<std::size_t>(n)];
    EXPECT_NEAR(c.plain[i], std::pow(h[i], e), 1e-12) << i;
  }
  expect_close(c);
}

TEST(EncryptedOps, IntegerPowersAreChainsOfProducts) {
  // Pow(h, 3) = h * h^2 and Pow(h, 5) = h * (h^2)^2: depth ceil(log2 e) each, no round.
  expect_power(4, {}, {3.0f}, 111);
  expect_power(4, {}, {5.0f}, 111);
}

TEST(EncryptedOps, PerElementIntegerPowersSelectBitsOfSquares) {
  // Exponents 0..5 per element: x^(2^j) chains, element maps with fill 1 pick the bits.
  expect_power(6, {6}, {0, 1, 2, 3, 4, 5}, 113);
}

TEST(EncryptedOps, HardSigmoidAndHardSwishThroughClipRounds) {
  // Exact rewrites: HardSigmoid = Clip(alpha x + beta, 0, 1) (a masked Clip round),
  // HardSwish = x * HardSigmoid(x) (and a ciphertext product).
  for (std::int64_t opset : {13, 17}) {
    ModelBuilder b(opset);
    b.input("x", {6}).output("y");
    b.initializer("w", {5, 6}, random_floats(30, 111, -3, 3));
    attr(b.node("Gemm", {"x", "w"}, {"h"}), "transB", std::int64_t{1});
    auto& hs = b.node("HardSigmoid", {"h"}, {"g"});
    attr(hs, "alpha", 0.25f);
    b.node(opset >= 14 ? "HardSwish" : "Relu", {"g"}, {"y0"});
    b.initializer("w2", {4, 5}, random_floats(20, 112));
    attr(b.node("Gemm", {"y0", "w2"}, {"y"}), "transB", std::int64_t{1});
    const auto g = b.load();
    for (const auto& n : g.nodes) {
      EXPECT_NE(n.op, model::OpType::HardSigmoid);
      EXPECT_NE(n.op, model::OpType::HardSwish);
    }
    expect_close(compare(g, random_input({6}, kBatch, 113), ckks::Packing::Complex));
  }
}

model::Graph function_net() {
  // Sigmoid, Tanh and SiLU (x * sigmoid(x): a round and a ciphertext product), then Exp and
  // Softplus of a bounded value.
  ModelBuilder b;
  b.input("x", {6}).output("y");
  b.initializer("w", {6, 6}, random_floats(36, 121, -1, 1));
  attr(b.node("Gemm", {"x", "w"}, {"h"}), "transB", std::int64_t{1});
  b.node("Sigmoid", {"h"}, {"s"});
  b.node("Tanh", {"h"}, {"t"});
  b.node("Mul", {"h", "s"}, {"silu"});
  b.node("Add", {"silu", "t"}, {"a"});
  b.initializer("w2", {4, 6}, random_floats(24, 122, -1, 1));
  attr(b.node("Gemm", {"a", "w2"}, {"g"}), "transB", std::int64_t{1});
  b.node("Exp", {"g"}, {"e"});
  b.node("Softplus", {"e"}, {"y"});
  return b.load();
}

TEST(EncryptedOps, UnmaskedFunctionRoundsWhenAllowed) {
  const auto g = function_net();
  const auto c = compare(g, random_input({6}, kBatch, 123), ckks::Packing::Complex);
  expect_close(c);
  EXPECT_EQ(c.stats.rounds, 4);
  const auto r = random_input({6}, kBatch, 124);
  expect_close(compare(g, r, ckks::Packing::Real, 2048, plan::RoundMasks::PerSample));
}

TEST(EncryptedOps, UnmaskedFunctionRoundsNeedTheOperatorsPermission) {
  const auto g = function_net();
  const plan::Parameters p = plan::plan_parameters(g, runtime::calibrate_ranges(g, {random_input({6}, kBatch, 125)}));
  EXPECT_FALSE(p.unmasked_functions);  // never a default
  try {
    plan::make_plan(g, p);
    FAIL() << "a plan with unmasked rounds must need --allow-unmasked-rounds";
  } catch (const model::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("--allow-unmasked-rounds"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Sigmoid"), std::string::npos) << e.what();
  }
}

TEST(EncryptedOps, NonFinalSoftmaxIsRejected) {
  ModelBuilder b;
  b.input("x", {4}).output("y");
  attr(b.node("Softmax", {"x"}, {"s"}), "axis", std::int64_t{-1});
  b.node("Relu", {"s"}, {"y"});
  const auto g = b.load();
  EXPECT_THROW(plan::node_kind(g, g.nodes[0]), model::ModelError);
}

}  // namespace
}  // namespace heinfer
