// plan::partition_columns (the spatial partition of a distributed run):
//  - column slabs for every rank count 1..64: contiguous, covering, balanced to one
//    column, owner() and columns() agreeing element by element (empty slabs when there
//    are more ranks than columns);
//  - a small CNN: convolutions and pools spatial, Flatten keeping its input's owners,
//    the Gemm of distributed inputs reduced, the final Softmax and what follows a
//    reduction on rank 0;
//  - a node whose windows cannot be mapped to columns (a Transpose) is not spatial, and a
//    single rank owns everything;
//  - invalid rank counts and mismatched plans are refused.
#include <gtest/gtest.h>

#include <stdexcept>

#include "../common/onnx_builder.h"
#include "plan/encrypted_plan.h"
#include "plan/partition.h"

namespace heinfer {
namespace {

using plan::NodeSplit;

plan::Parameters params(const model::Graph& g) {
  plan::Parameters p;
  p.params = ckks::EncryptionParameters(4096, {40, 30, 30, 30}, {}, ckks::SecurityLevel::None);
  p.bounds.assign(g.tensors.size(), 1.0);
  return p;
}

model::TensorId tensor(const model::Graph& g, const std::string& name) {
  for (std::size_t t = 0; t < g.tensors.size(); ++t) {
    if (g.tensors[t].name == name) return static_cast<model::TensorId>(t);
  }
  ADD_FAILURE() << "no tensor " << name;
  return model::kNoTensor;
}

const plan::TensorSplit& split(const model::Graph& g, const plan::Partition& p, const std::string& name) {
  return p.tensors[static_cast<std::size_t>(tensor(g, name))];
}

std::size_t node(const model::Graph& g, const std::string& output) {
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    if (g.nodes[k].outputs[0] == tensor(g, output)) return k;
  }
  ADD_FAILURE() << "no node produces " << output;
  return 0;
}

/// [2, 12, 10] -> Conv 3x3 pad 1 (4 ch) -> Relu -> MaxPool 2 -> Flatten -> Gemm(120 -> 5)
/// -> Relu -> Gemm(5 -> 3) -> Softmax.
model::Graph small_cnn() {
  test::ModelBuilder b;
  b.input("x", {2, 12, 10}).output("y");
  b.initializer("w", {4, 2, 3, 3}, test::random_floats(72, 1));
  b.initializer("f1", {5, 120}, test::random_floats(600, 2));
  b.initializer("f2", {3, 5}, test::random_floats(15, 3));
  auto& c = b.node("Conv", {"x", "w"}, {"c"});
  test::attr(c, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c"}, {"r"});
  auto& m = b.node("MaxPool", {"r"}, {"m"});
  test::attr(m, "kernel_shape", std::vector<std::int64_t>{2, 2});
  test::attr(m, "strides", std::vector<std::int64_t>{2, 2});
  b.node("Flatten", {"m"}, {"f"});
  auto& g1 = b.node("Gemm", {"f", "f1"}, {"h"});
  test::attr(g1, "transB", std::int64_t{1});
  b.node("Relu", {"h"}, {"hr"});
  auto& g2 = b.node("Gemm", {"hr", "f2"}, {"z"});
  test::attr(g2, "transB", std::int64_t{1});
  auto& s = b.node("Softmax", {"z"}, {"y"});
  test::attr(s, "axis", std::int64_t{1});
  return b.load();
}

TEST(Partition, SlabsCoverEveryColumnOnceAndAreBalanced) {
  for (std::int64_t width : {1, 7, 28, 224}) {
    for (int ranks = 1; ranks <= 64; ++ranks) {
      test::ModelBuilder b;
      b.input("x", {3, 2, width}).output("y");
      b.node("Relu", {"x"}, {"y"});
      const model::Graph g = b.load();
      const plan::Partition p = plan::partition_columns(g, plan::make_plan(g, params(g)), ranks);
      const plan::TensorSplit& s = split(g, p, "x");
      ASSERT_TRUE(s.distributed);
      ASSERT_EQ(s.bounds.size(), static_cast<std::size_t>(ranks) + 1);
      EXPECT_EQ(s.bounds.front(), 0);
      EXPECT_EQ(s.bounds.back(), width);
      for (int r = 0; r < ranks; ++r) {
        const auto [begin, end] = s.columns(r);
        EXPECT_LE(begin, end);
        EXPECT_LE(end - begin, width / ranks + 1) << width << " columns on " << ranks << " ranks";
        EXPECT_GE(end - begin, width / ranks);
      }
      for (std::int64_t e = 0; e < 3 * 2 * width; ++e) {
        const int r = s.owner(e);
        ASSERT_GE(r, 0);
        ASSERT_LT(r, ranks);
        const auto [begin, end] = s.columns(r);
        EXPECT_GE(e % width, begin) << "element " << e << " of width " << width << " on " << ranks << " ranks";
        EXPECT_LT(e % width, end);
      }
    }
  }
}

TEST(Partition, SmallCnnSplits) {
  const model::Graph g = small_cnn();
  const plan::EncryptedPlan plan = plan::make_plan(g, params(g));
  const plan::Partition p = plan::partition_columns(g, plan, 3);
  const std::string d = plan::describe(g, p);
  EXPECT_EQ(p.nodes[node(g, "c")], NodeSplit::Spatial) << d;
  EXPECT_EQ(p.nodes[node(g, "m")], NodeSplit::Spatial) << d;
  EXPECT_EQ(p.nodes[node(g, "f")], NodeSplit::Inherit) << d;
  EXPECT_EQ(p.nodes[node(g, "h")], NodeSplit::Reduce) << d;
  // After the reduction the activations are rank 0's: the rest runs there.
  EXPECT_EQ(p.nodes[node(g, "hr")], NodeSplit::Root) << d;
  EXPECT_EQ(p.nodes[node(g, "z")], NodeSplit::Root) << d;
  EXPECT_EQ(p.nodes[node(g, "y")], NodeSplit::Root) << d;

  // The pooled [4, 6, 5] map is split by its own 5 columns, and the Flatten keeps that.
  const plan::TensorSplit& m = split(g, p, "m");
  EXPECT_EQ(m.width, 5);
  EXPECT_EQ(m.bounds, (std::vector<std::int64_t>{0, 1, 3, 5}));
  const plan::TensorSplit& f = split(g, p, "f");
  EXPECT_TRUE(f.distributed);
  for (std::int64_t e = 0; e < 120; ++e) EXPECT_EQ(f.owner(e), m.owner(e));
  EXPECT_FALSE(split(g, p, "h").distributed);
  EXPECT_EQ(split(g, p, "h").owner(3), 0);
  EXPECT_EQ(split(g, p, "h").columns(1), (std::pair<std::int64_t, std::int64_t>{0, 0}));
  EXPECT_EQ(split(g, p, "c").width, 10);
  EXPECT_NE(d.find(g.nodes[node(g, "h")].name + ": reduce"), std::string::npos) << d;
}

TEST(Partition, RoundRequestsAreThePlansOnOneRankAndEachRanksOwnChunksOnMore) {
  const model::Graph g = small_cnn();
  for (const bool streaming : {false, true}) {
    plan::ScheduleOptions so;
    so.streaming = streaming;
    so.tile_bytes = 1 << 20;  // a few items per round: chunks matter
    const plan::EncryptedPlan plan = plan::make_plan(g, params(g), so);
    const auto one = plan::round_requests(g, plan, plan::partition_columns(g, plan, 1));
    std::int64_t rounds = 0;
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      EXPECT_EQ(one[k], plan.nodes[k].rounds) << g.nodes[k].name << (streaming ? " (streamed)" : "");
      rounds += one[k];
    }
    ASSERT_GT(rounds, 0);
    const plan::Partition p = plan::partition_columns(g, plan, 3);
    const auto three = plan::round_requests(g, plan, p);
    // The MaxPool's [4, 6, 5] output on columns {1, 2, 2}: each rank its own chunks.
    const std::size_t m = node(g, "m");
    const std::int64_t items = plan.nodes[m].round_items;
    ASSERT_GT(items, 0);
    std::int64_t expected = 0;
    for (const plan::StreamStep& st : plan.steps) {
      if (st.node != static_cast<std::int64_t>(m)) continue;
      const std::int64_t rows = st.streamed ? st.row_end - st.row_begin : 6;
      for (const std::int64_t cols : {1, 2, 2}) expected += (4 * rows * cols + items - 1) / items;
    }
    EXPECT_EQ(three[m], expected * plan.nodes[m].rounds_per_chunk) << (streaming ? "streamed" : "whole");
    EXPECT_GE(three[m], one[m]);
    // The Relu after the reduced Gemm runs on rank 0 alone: as on one rank.
    EXPECT_EQ(three[node(g, "hr")], one[node(g, "hr")]);
  }
}

TEST(Partition, ATransposeIsNotSpatialAndOneRankOwnsEverything) {
  test::ModelBuilder b;
  b.input("x", {2, 4, 6}).output("y");
  auto& t = b.node("Transpose", {"x"}, {"t"});
  test::attr(t, "perm", std::vector<std::int64_t>{0, 1, 3, 2});
  b.node("Relu", {"t"}, {"y"});
  const model::Graph g = b.load();
  const plan::EncryptedPlan plan = plan::make_plan(g, params(g));
  const plan::Partition p = plan::partition_columns(g, plan, 2);
  EXPECT_NE(p.nodes[node(g, "t")], NodeSplit::Spatial) << plan::describe(g, p);
  EXPECT_NE(p.nodes[node(g, "t")], NodeSplit::Inherit) << "a Transpose does not keep the element order";

  const plan::Partition one = plan::partition_columns(g, plan, 1);
  for (std::size_t i = 0; i < g.tensors.size(); ++i) {
    for (std::int64_t e = 0; e < 48; ++e) EXPECT_EQ(one.tensors[i].owner(e), 0);
  }
}

TEST(Partition, RefusesBadRankCountsAndMismatchedPlans) {
  const model::Graph g = small_cnn();
  const plan::EncryptedPlan plan = plan::make_plan(g, params(g));
  EXPECT_THROW(plan::partition_columns(g, plan, 0), std::invalid_argument);
  EXPECT_THROW(plan::partition_columns(g, plan, -3), std::invalid_argument);
  plan::EncryptedPlan other = plan;
  other.nodes.pop_back();
  EXPECT_THROW(plan::partition_columns(g, other, 2), std::invalid_argument);
}

}  // namespace
}  // namespace heinfer
