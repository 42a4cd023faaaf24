// plan::cut_candidates and plan::choose_segment_cuts on a chain of residual blocks:
//  - the candidates are exactly the boundaries one stored group crosses (block outputs
//    and the stem), never inside a block (the skip crosses there too);
//  - no cuts when the budget holds the uncut plan's hot peak, or without streaming;
//  - under a smaller budget, cuts at candidates whose plan fits it, the crossing bytes
//    are those of the crossing tensors, and the predicted tier writes fall; under a
//    budget nothing fits, no cuts (they would only add writes) and no error.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "../common/onnx_builder.h"
#include "predict.h"
#include "plan/segment_cuts.h"

namespace heinfer {
namespace {

using test::attr;
using test::ModelBuilder;

std::string block_prefix(int i) { return std::string("b").append(std::to_string(i)).append("_"); }

/// x [4, 20, 20] -> conv 3x3 (8) -> Relu -> 3 × [conv 3x3 -> Relu -> conv 3x3 -> Add
/// (block input) -> Relu] -> conv 3x3 stride 2 (2) -> Relu -> GlobalAveragePool -> Flatten
/// -> Gemm.
model::Graph residual_chain() {
  ModelBuilder b;
  b.input("x", {4, 20, 20}).output("y");
  std::uint32_t seed = 11;
  auto conv = [&](const std::string& in, const std::string& out, std::int64_t cin) {
    b.initializer(out + "_w", {8, cin, 3, 3}, test::random_floats(static_cast<std::size_t>(8 * cin * 9), seed++));
    attr(b.node("Conv", {in, out + "_w"}, {out}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  };
  conv("x", "stem", 4);
  b.node("Relu", {"stem"}, {"s"});
  std::string in = "s";
  for (int i = 0; i < 3; ++i) {
    const std::string p = block_prefix(i);
    conv(in, p + "c1", 8);
    b.node("Relu", {p + "c1"}, {p + "r1"});
    conv(p + "r1", p + "c2", 8);
    b.node("Add", {p + "c2", in}, {p + "a"});
    b.node("Relu", {p + "a"}, {p + "out"});
    in = p + "out";
  }
  b.initializer("tail_w", {2, 8, 3, 3}, test::random_floats(144, seed++));
  auto& tail = b.node("Conv", {in, "tail_w"}, {"tail"});  // [2, 10, 10]: a small segment output
  attr(tail, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  attr(tail, "strides", std::vector<std::int64_t>{2, 2});
  b.node("Relu", {"tail"}, {"tail_r"});
  b.node("GlobalAveragePool", {"tail_r"}, {"gap"});
  b.node("Flatten", {"gap"}, {"f"});
  b.initializer("gw", {3, 2}, test::random_floats(6, seed++));
  attr(b.node("Gemm", {"f", "gw"}, {"y"}), "transB", std::int64_t{1});
  return b.load();
}

plan::Parameters small_plan(const model::Graph& g) {
  plan::Parameters p;
  p.params = ckks::EncryptionParameters(4096, {40, 30, 30}, {}, ckks::SecurityLevel::None);
  p.bounds.assign(g.tensors.size(), 1.0);
  return p;
}

std::int64_t index_of(const model::Graph& g, const std::string& output) {
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    if (g.tensors[static_cast<std::size_t>(g.nodes[k].outputs[0])].name == output) return static_cast<std::int64_t>(k);
  }
  ADD_FAILURE() << "no node produces " << output;
  return -1;
}

plan::ScheduleOptions streamed(std::int64_t tile_bytes) {
  plan::ScheduleOptions so;
  so.streaming = true;
  so.tile_bytes = tile_bytes;
  return so;
}

constexpr std::int64_t kTile = std::int64_t{1} << 20;  // bands of 1 MiB / 98 KiB / 8: one row

TEST(SegmentCuts, CandidatesAreTheBoundariesOneGroupCrosses) {
  const model::Graph g = residual_chain();
  const auto p = plan::make_plan(g, small_plan(g), streamed(kTile));
  const auto c = plan::cut_candidates(g, p);
  // Inside a block the block input (the skip) crosses beside the main path: no
  // candidate; between blocks one tensor does. Not at the stem's Relu nor at the tail's:
  // the stem's Conv, or the Relu before the GlobalAveragePool (which ends the streamed
  // segment), would be left alone.
  std::vector<std::int64_t> expected;
  for (int i = 0; i < 3; ++i) {
    const std::string q = block_prefix(i);
    expected.push_back(index_of(g, q + "c1"));
    expected.push_back(index_of(g, q + "out"));
  }
  expected.push_back(index_of(g, "tail"));
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(c, expected);
}

TEST(SegmentCuts, BudgetChoosesCuts) {
  const model::Graph g = residual_chain();
  const plan::Parameters params = small_plan(g);
  const auto uncut = plan::choose_segment_cuts(g, params, streamed(kTile), std::int64_t{1} << 40);
  EXPECT_TRUE(uncut.segment_starts.empty());
  EXPECT_EQ(uncut.hot_peak_bytes, uncut.uncut_hot_peak_bytes);
  EXPECT_EQ(uncut.crossing_bytes, 0);
  ASSERT_GT(uncut.uncut_hot_peak_bytes, 0);
  plan::ScheduleOptions whole;
  whole.tile_bytes = kTile;
  EXPECT_TRUE(plan::choose_segment_cuts(g, params, whole, 1).segment_starts.empty()) << "nothing streams";
  EXPECT_TRUE(plan::choose_segment_cuts(g, params, streamed(kTile), 0).segment_starts.empty()) << "no budget";

  const auto candidates = plan::cut_candidates(g, plan::make_plan(g, params, streamed(kTile)));
  // A budget between one block's windows and all of them.
  const std::int64_t budget = uncut.uncut_hot_peak_bytes * 2 / 3;
  const auto r = plan::choose_segment_cuts(g, params, streamed(kTile), budget);
  ASSERT_FALSE(r.segment_starts.empty());
  EXPECT_LT(r.segment_starts.size(), candidates.size()) << "cut everywhere although segments of blocks fit";
  EXPECT_TRUE(std::is_sorted(r.segment_starts.begin(), r.segment_starts.end()));
  for (std::int64_t c : r.segment_starts) {
    EXPECT_NE(std::find(candidates.begin(), candidates.end(), c), candidates.end()) << "cut at " << c;
  }
  EXPECT_LE(r.hot_peak_bytes, budget);
  EXPECT_LT(r.hot_peak_bytes, r.uncut_hot_peak_bytes);
  // The crossing bytes: the output bytes of the tensors produced before each cut and read after it.
  plan::ScheduleOptions so = streamed(kTile);
  so.segment_starts = r.segment_starts;
  const auto p = plan::make_plan(g, params, so);
  const auto f = plan::predict_footprint(g, p);
  EXPECT_EQ(f.hot_peak_bytes, r.hot_peak_bytes);
  std::int64_t crossing = 0;
  for (std::int64_t c : r.segment_starts) {
    crossing += f.nodes[static_cast<std::size_t>(c - 1)].output_bytes;  // a chain: the node before the cut
  }
  EXPECT_EQ(r.crossing_bytes, crossing);
  std::printf("residual chain: hot peak %lld bytes uncut, budget %lld: %zu cuts of %zu candidates, hot peak %lld, "
              "crossing %lld bytes\n",
              static_cast<long long>(r.uncut_hot_peak_bytes), static_cast<long long>(budget), r.segment_starts.size(),
              candidates.size(), static_cast<long long>(r.hot_peak_bytes), static_cast<long long>(r.crossing_bytes));

  // The cuts pay: fewer predicted tier writes than the windows cycling through the tier.
  EXPECT_EQ(r.tier_writes, plan::predicted_tier_writes(f, budget, r.crossing_bytes));
  EXPECT_LT(r.tier_writes, r.uncut_tier_writes);
  EXPECT_GE(r.tier_writes, r.crossing_bytes);
  // A budget nothing fits: every band's output goes to the tier with or without cuts, so
  // cuts would only add their crossing tensors: none.
  const auto tight = plan::choose_segment_cuts(g, params, streamed(kTile), 1);
  EXPECT_TRUE(tight.segment_starts.empty());
  EXPECT_EQ(tight.tier_writes, tight.uncut_tier_writes);
  std::int64_t outputs = 0;
  for (const auto& st : plan::predict_footprint(g, plan::make_plan(g, params, streamed(kTile))).steps) outputs += st.output;
  EXPECT_EQ(tight.uncut_tier_writes, outputs);
}

}  // namespace
}  // namespace heinfer
