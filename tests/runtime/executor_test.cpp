// The plaintext executor: layout, input validation, batch independence, and the
// equivalence of BatchNormalization folding on random data.
#include <gtest/gtest.h>

#include <random>

#include "../common/onnx_builder.h"
#include "model/error.h"
#include "runtime/batch_runner.h"
#include "runtime/plain_executor.h"

namespace heinfer {
namespace {

using test::attr;
using test::ModelBuilder;

using test::random_floats;

TEST(PlainTensor, ElementMajorBatchInnermostLayout) {
  const std::vector<double> x{0, 1, 2, 10, 11, 12};  // 2 samples of shape [3], batch-major
  const runtime::PlainTensor t = runtime::from_batch_major(std::span<const double>(x), 2, {3});
  EXPECT_EQ(t.data, (std::vector<double>{0, 10, 1, 11, 2, 12}));
  EXPECT_EQ(t.elements(), 3);
  EXPECT_EQ(t.element(1)[1], 11);
  EXPECT_EQ(runtime::to_batch_major(t), x);
  EXPECT_THROW(runtime::from_batch_major(std::span<const double>(x), 4, {3}), std::invalid_argument);
}

TEST(Executor, RejectsWrongInputs) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.node("Relu", {"x"}, {"y"});
  const model::Graph g = b.load();
  std::vector<runtime::PlainTensor> bad;
  bad.push_back(runtime::make_plain_tensor({4}, 2));
  EXPECT_THROW(runtime::run_plain(g, std::move(bad)), model::ModelError);
  EXPECT_THROW(runtime::run_plain(g, {}), model::ModelError);
}

/// A small CNN with BN after Conv and Gemm, a residual Add and pooling.
ModelBuilder bn_net(std::uint32_t seed) {
  ModelBuilder b;
  b.input("x", {2, 6, 6}).output("y");
  b.initializer("w1", {4, 2, 3, 3}, random_floats(72, seed));
  b.initializer("b1", {4}, random_floats(4, seed + 1));
  auto bn = [&](const std::string& p, std::int64_t c, std::uint32_t s) {
    b.initializer(p + "s", {c}, random_floats(static_cast<std::size_t>(c), s, 0.5f, 1.5f));
    b.initializer(p + "b", {c}, random_floats(static_cast<std::size_t>(c), s + 1));
    b.initializer(p + "m", {c}, random_floats(static_cast<std::size_t>(c), s + 2));
    b.initializer(p + "v", {c}, random_floats(static_cast<std::size_t>(c), s + 3, 0.5f, 2.0f));
  };
  bn("bn1", 4, seed + 10);
  bn("bn2", 4, seed + 20);
  bn("bn3", 5, seed + 30);
  auto& c1 = b.node("Conv", {"x", "w1", "b1"}, {"c1"});
  attr(c1, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("BatchNormalization", {"c1", "bn1s", "bn1b", "bn1m", "bn1v"}, {"n1"});
  b.node("Relu", {"n1"}, {"r1"});
  b.initializer("w2", {4, 1, 3, 3}, random_floats(36, seed + 2));
  auto& c2 = b.node("Conv", {"r1", "w2"}, {"c2"});  // depthwise, no bias
  attr(c2, "group", std::int64_t{4});
  attr(c2, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("BatchNormalization", {"c2", "bn2s", "bn2b", "bn2m", "bn2v"}, {"n2"});
  b.node("Add", {"n2", "r1"}, {"res"});
  auto& pool = b.node("AveragePool", {"res"}, {"p"});
  attr(pool, "kernel_shape", std::vector<std::int64_t>{2, 2});
  attr(pool, "strides", std::vector<std::int64_t>{2, 2});
  b.node("Flatten", {"p"}, {"f"});
  b.initializer("w3", {5, 36}, random_floats(180, seed + 3));
  attr(b.node("Gemm", {"f", "w3"}, {"g"}), "transB", std::int64_t{1});
  b.node("BatchNormalization", {"g", "bn3s", "bn3b", "bn3m", "bn3v"}, {"y"});
  return b;
}

TEST(Executor, BatchNormFoldingIsEquivalentOnRandomData) {
  for (std::uint32_t seed : {1u, 2u, 3u}) {
    const ModelBuilder b = bn_net(seed * 100);
    const model::Graph folded = b.load();
    model::LoadOptions keep;
    keep.fold_batchnorm = false;
    const model::Graph unfolded = b.load(keep);
    int bn_folded = 0, bn_unfolded = 0;
    for (const auto& n : folded.nodes) bn_folded += n.op == model::OpType::BatchNormalization;
    for (const auto& n : unfolded.nodes) bn_unfolded += n.op == model::OpType::BatchNormalization;
    EXPECT_EQ(bn_folded, 0);
    EXPECT_EQ(bn_unfolded, 3);
    const auto x = random_floats(7 * 72, seed);
    auto run = [&](const model::Graph& g) {
      std::vector<runtime::PlainTensor> in;
      in.push_back(runtime::from_batch_major(std::span<const float>(x), 7, {2, 6, 6}));
      return runtime::to_batch_major(runtime::run_plain(g, std::move(in))[0]);
    };
    const auto a = run(folded), c = run(unfolded);
    ASSERT_EQ(a.size(), 7u * 5u);
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], c[i], 1e-12 * (1 + std::abs(c[i])));
  }
}

TEST(Executor, SamplesAreIndependentOfBatchAndChunking) {
  const model::Graph g = bn_net(7).load();
  const auto x = random_floats(9 * 72, 99);
  const std::vector<double> xd(x.begin(), x.end());
  const auto all = runtime::run_plain_batched(g, xd, 9, 9);
  const auto chunked = runtime::run_plain_batched(g, xd, 9, 4);
  const auto single = runtime::run_plain_batched(g, xd, 9, 1);
  EXPECT_EQ(all, chunked);
  EXPECT_EQ(all, single);
}

}  // namespace
}  // namespace heinfer
