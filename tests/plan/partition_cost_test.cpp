// plan::rank_shares and plan::predict_distributed (the prediction of `inspect --ranks`):
//  - one rank holds and does everything, exchanges nothing, and its footprint replayed
//    with shares of 1 is the one-process footprint; its time is the one-process time;
//  - on 1..8 ranks the work shares of every node sum to one over the ranks and bytes
//    sent equal bytes received;
//  - a 3x3 convolution's halo on 2 ranks is one column each way (C·H ciphertexts at the
//    serialized size of the stored level), and none for a 1x1 convolution;
//  - the Fashion-MNIST CNN's largest rank peak falls about as 1/P (2 ranks) and the
//    predicted time adds the stated exchange latencies.
// The bytes against a real distributed run: tests/distributed/.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "../common/onnx_builder.h"
#include "ckks/sizes.h"
#include "model/load.h"
#include "plan/encrypted_plan.h"
#include "plan/partition.h"
#include "plan/partition_cost.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;

plan::Parameters params(const model::Graph& g) {
  plan::Parameters p;
  p.params = ckks::EncryptionParameters(4096, {40, 30, 30, 30}, {}, ckks::SecurityLevel::None);
  p.bounds.assign(g.tensors.size(), 1.0);
  return p;
}

/// [4, 6, 8] -> Conv k x k (pad k/2, 5 channels) -> Relu -> Flatten -> Gemm(240 -> 3).
model::Graph conv_net(std::int64_t k) {
  test::ModelBuilder b;
  b.input("x", {4, 6, 8}).output("y");
  b.initializer("w", {5, 4, k, k}, test::random_floats(static_cast<std::size_t>(20 * k * k), 1));
  b.initializer("f", {3, 240}, test::random_floats(720, 2));
  auto& c = b.node("Conv", {"x", "w"}, {"c"});
  test::attr(c, "pads", std::vector<std::int64_t>{k / 2, k / 2, k / 2, k / 2});
  b.node("Relu", {"c"}, {"r"});
  b.node("Flatten", {"r"}, {"fl"});
  auto& gm = b.node("Gemm", {"fl", "f"}, {"y"});
  test::attr(gm, "transB", std::int64_t{1});
  return b.load();
}

TEST(PartitionCost, OneRankIsTheOneProcessRun) {
  const model::Graph g = conv_net(3);
  const plan::EncryptedPlan plan = plan::make_plan(g, params(g));
  const plan::Partition p = plan::partition_columns(g, plan, 1);
  plan::TimeEstimate t;
  t.node_seconds = {1.0, 2.0, 0.0, 0.5};
  t.encrypt_seconds = 0.25;
  t.decrypt_seconds = 0.125;
  t.batch_seconds = 3.875;
  const plan::DistributedEstimate d = plan::predict_distributed(g, plan, p, {}, &t);
  ASSERT_EQ(d.shares.size(), 1u);
  for (std::size_t i = 0; i < g.tensors.size(); ++i) {
    if (!g.tensors[i].is_constant) {
      EXPECT_DOUBLE_EQ(d.shares[0].tensor[i], 1.0) << g.tensors[i].name;
    }
  }
  for (double s : d.shares[0].node) EXPECT_DOUBLE_EQ(s, 1.0);
  EXPECT_EQ(d.bytes_exchanged, 0);
  EXPECT_EQ(d.exchanges, 0);
  EXPECT_EQ(d.peak_bytes, plan::predict_footprint(g, plan).peak_bytes);
  EXPECT_DOUBLE_EQ(d.batch_seconds, t.batch_seconds);
}

TEST(PartitionCost, WorkSharesSumToOneAndBytesBalance) {
  const model::Graph g = conv_net(3);
  const plan::EncryptedPlan plan = plan::make_plan(g, params(g));
  for (int ranks = 1; ranks <= 8; ++ranks) {
    const auto shares = plan::rank_shares(g, plan, plan::partition_columns(g, plan, ranks));
    ASSERT_EQ(shares.size(), static_cast<std::size_t>(ranks));
    std::int64_t sent = 0, received = 0;
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      double sum = 0;
      for (const auto& s : shares) sum += s.node[k];
      EXPECT_NEAR(sum, 1.0, 1e-12) << "node " << g.nodes[k].name << " on " << ranks << " ranks";
    }
    for (const auto& s : shares) {
      sent += s.bytes_sent;
      received += s.bytes_received;
      for (double f : s.tensor) {
        EXPECT_GE(f, 0.0);
        EXPECT_LE(f, 1.0);
      }
    }
    EXPECT_EQ(sent, received) << ranks << " ranks";
  }
}

TEST(PartitionCost, HaloOfA3x3ConvolutionIsOneColumnEachWay) {
  const model::Graph g3 = conv_net(3), g1 = conv_net(1);
  const plan::EncryptedPlan p3 = plan::make_plan(g3, params(g3)), p1 = plan::make_plan(g1, params(g1));
  const auto s3 = plan::rank_shares(g3, p3, plan::partition_columns(g3, p3, 2));
  const auto s1 = plan::rank_shares(g1, p1, plan::partition_columns(g1, p1, 2));
  // The input x: fresh from the client (compact), stored at the level the Conv reads it.
  const int level = p3.tensors[static_cast<std::size_t>(g3.inputs[0])].stored_level;
  const std::int64_t column = 4 * 6 * ckks::serialized_ciphertext_bytes(p3.parameters.params, level, true);
  const std::int64_t reduce = 3 * ckks::serialized_ciphertext_bytes(p3.parameters.params, p3.nodes[3].output_level, false);
  EXPECT_EQ(s3[0].node_sent[0], column);
  EXPECT_EQ(s3[1].node_sent[0], column);
  EXPECT_EQ(s3[1].node_sent[3], reduce) << "rank 1's partial sums of the Gemm";
  EXPECT_EQ(s3[0].bytes_received, column + reduce);
  // Each rank holds its 4 columns of x and one more.
  EXPECT_DOUBLE_EQ(s3[0].tensor[static_cast<std::size_t>(g3.inputs[0])], 5.0 / 8.0);
  EXPECT_EQ(s1[0].node_sent[0] + s1[1].node_sent[0], 0) << "a 1x1 convolution reads no halo";
}

TEST(PartitionCost, AHaloReadThroughAFusedReluStaysInItsBand) {
  // Conv -> Relu (fused into the MaxPool's round: a view of the Conv's ciphertexts) ->
  // MaxPool 3x3 stride 2 pad 1 (a halo column) -> Conv -> Relu -> Flatten -> Gemm,
  // streamed: the halo lands in the Conv's group, which must stay a window of rows.
  test::ModelBuilder b;
  b.input("x", {4, 32, 32}).output("y");
  b.initializer("w1", {8, 4, 3, 3}, test::random_floats(288, 3));
  b.initializer("w2", {8, 8, 3, 3}, test::random_floats(576, 4));
  b.initializer("f", {3, 2048}, test::random_floats(6144, 5));
  auto& c1 = b.node("Conv", {"x", "w1"}, {"c1"});
  test::attr(c1, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"});
  auto& m = b.node("MaxPool", {"r1"}, {"m"});
  test::attr(m, "kernel_shape", std::vector<std::int64_t>{3, 3});
  test::attr(m, "strides", std::vector<std::int64_t>{2, 2});
  test::attr(m, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  auto& c2 = b.node("Conv", {"m", "w2"}, {"c2"});
  test::attr(c2, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c2"}, {"r2"});
  b.node("Flatten", {"r2"}, {"fl"});
  auto& gm = b.node("Gemm", {"fl", "f"}, {"y"});
  test::attr(gm, "transB", std::int64_t{1});
  const model::Graph g = b.load();
  plan::ScheduleOptions so;
  so.streaming = true;
  so.tile_bytes = 1 << 20;
  const plan::EncryptedPlan plan = plan::make_plan(g, params(g), so);
  ASSERT_EQ(plan.nodes[1].kind, plan::NodeKind::FusedRelu);
  const auto one = plan::predict_distributed(g, plan, plan::partition_columns(g, plan, 1), {}, nullptr);
  const auto two = plan::predict_distributed(g, plan, plan::partition_columns(g, plan, 2), {}, nullptr);
  // Rank 1's pooling windows start at column 15 of rank 0's slab [0, 16).
  EXPECT_GT(two.shares[1].tensor[static_cast<std::size_t>(g.nodes[0].outputs[0])], 0.5) << "rank 1 holds a halo column";
  for (int r = 0; r < 2; ++r) {
    EXPECT_LE(two.rank_peak_bytes[static_cast<std::size_t>(r)], one.peak_bytes * 65 / 100)
        << "rank " << r << " of 2 against one process (streamed)";
  }
}

TEST(PartitionCost, CnnPeakPerRankFallsWithTheRanks) {
  const model::Graph g = model::load_model(fs::path(HEINFER_SOURCE_DIR) / "models" / "fmnist_cnn.onnx");
  plan::Parameters pp;
  pp.params = ckks::EncryptionParameters(4096, {47, 30, 30}, {}, ckks::SecurityLevel::None);
  pp.bounds.assign(g.tensors.size(), 4.0);
  const plan::EncryptedPlan plan = plan::make_plan(g, pp);
  plan::TimeEstimate t;
  t.node_seconds.assign(g.nodes.size(), 1.0);
  plan::LinkModel link;
  link.latency_seconds = 1e-3;
  link.bytes_per_second = 1e9;
  const auto one = plan::predict_distributed(g, plan, plan::partition_columns(g, plan, 1), {}, &t, link);
  const auto two = plan::predict_distributed(g, plan, plan::partition_columns(g, plan, 2), {}, &t, link);
  EXPECT_LE(two.peak_bytes, one.peak_bytes * 6 / 10);
  EXPECT_GE(two.peak_bytes, one.peak_bytes * 4 / 10);
  EXPECT_GT(two.bytes_exchanged, 0);
  // Two exchanges per node (whole nodes) and one per reduction; each an all-to-all of
  // sizes (ceil(log2 2) = 1 message) and one message to the other rank, except for the
  // nodes that keep their input's owners (the Flatten): 2 exchanges of 1 latency.
  const plan::Partition part = plan::partition_columns(g, plan, 2);
  EXPECT_EQ(two.exchanges, 2 * static_cast<std::int64_t>(g.nodes.size()) + 1);
  double expected = 0;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const double busiest = static_cast<double>(std::max({two.shares[0].node_sent[k], two.shares[0].node_received[k],
                                                         two.shares[1].node_sent[k], two.shares[1].node_received[k]}));
    const bool reduce = part.nodes[k] == plan::NodeSplit::Reduce;
    const double latencies = part.nodes[k] == plan::NodeSplit::Inherit ? 1 : 2;
    expected += (reduce ? 3 : 2) * latencies * 1e-3 + busiest / 1e9;
  }
  EXPECT_NEAR(two.exchange_seconds, expected, 1e-9);
  EXPECT_LT(two.compute_seconds, one.compute_seconds);
}

// --rank-groups auto: the most groups that divide the ranks, at most the batches, and
// whose per-rank peak fits; one group when nothing fits.
TEST(PartitionCost, RankGroupsAreTheMostBatchesInFlightThatFit) {
  const model::Graph g = model::load_model(fs::path(HEINFER_SOURCE_DIR) / "models" / "fmnist_cnn.onnx");
  plan::Parameters pp;
  pp.params = ckks::EncryptionParameters(4096, {47, 30, 30}, {}, ckks::SecurityLevel::None);
  pp.bounds.assign(g.tensors.size(), 4.0);
  const plan::EncryptedPlan plan = plan::make_plan(g, pp);
  const plan::FootprintOptions fo;
  auto peak = [&](int ranks) {
    return plan::predict_distributed(g, plan, plan::partition_columns(g, plan, ranks), fo, nullptr).peak_bytes;
  };
  EXPECT_EQ(plan::choose_rank_groups(g, plan, 4, 10, 0, fo), 4);  // no bound: a batch per rank
  EXPECT_EQ(plan::choose_rank_groups(g, plan, 4, 3, 0, fo), 2);   // at most the batches, dividing 4
  EXPECT_EQ(plan::choose_rank_groups(g, plan, 6, 3, 0, fo), 3);
  EXPECT_EQ(plan::choose_rank_groups(g, plan, 4, 1, 0, fo), 1);
  EXPECT_EQ(plan::choose_rank_groups(g, plan, 4, 10, peak(1), fo), 4);      // one rank's peak fits
  EXPECT_EQ(plan::choose_rank_groups(g, plan, 4, 10, peak(1) - 1, fo), 2);  // needs 2 ranks a batch
  EXPECT_EQ(plan::choose_rank_groups(g, plan, 4, 10, peak(2) - 1, fo), 1);  // needs 4
  EXPECT_EQ(plan::choose_rank_groups(g, plan, 4, 10, 1, fo), 1);            // nothing fits
  EXPECT_THROW(plan::choose_rank_groups(g, plan, 0, 1, 0, fo), std::invalid_argument);
}

}  // namespace
}  // namespace heinfer
