// plan::make_plan against hand counts on small graphs: store groups and their readers
// (data movement shares its input's group), the client rounds of a node (items per round
// from the tile bytes, round count over the schedule) and the round bound the client is
// held to (the input's bound × its largest inverse pending factor × the largest mask).
#include <gtest/gtest.h>

#include <limits>
#include <stdexcept>
#include <vector>

#include "../common/onnx_builder.h"
#include "ckks/sizes.h"
#include "plan/encrypted_plan.h"

namespace heinfer {
namespace {

using plan::kMaskMax;
using plan::NodeKind;

/// [1, 4, 4] -> Relu -> Relu -> Flatten -> Gemm(16 -> 3): two rounds in a row (the second
/// reads pending factors), a shared group, a linear layer folding the factors.
model::Graph two_relus() {
  test::ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y");
  b.initializer("w", {3, 16}, std::vector<float>(48, 0.5f));
  b.node("Relu", {"x"}, {"r1"});
  b.node("Relu", {"r1"}, {"r2"});
  b.node("Flatten", {"r2"}, {"f"});
  auto& gm = b.node("Gemm", {"f", "w"}, {"y"});
  test::attr(gm, "transB", std::int64_t{1});
  return b.load();
}

plan::Parameters params(const model::Graph& g, double bound) {
  plan::Parameters p;
  p.params = ckks::EncryptionParameters(4096, {40, 30, 30}, {40}, ckks::SecurityLevel::None);
  p.bounds.assign(g.tensors.size(), bound);
  return p;
}

model::TensorId tensor(const model::Graph& g, const std::string& name) {
  for (std::size_t t = 0; t < g.tensors.size(); ++t) {
    if (g.tensors[t].name == name) return static_cast<model::TensorId>(t);
  }
  ADD_FAILURE() << "no tensor " << name;
  return model::kNoTensor;
}

TEST(EncryptedPlan, GroupsAndTheirReaders) {
  const model::Graph g = two_relus();
  const plan::EncryptedPlan p = plan::make_plan(g, params(g, 1.0));
  const auto r2 = tensor(g, "r2"), f = tensor(g, "f");
  ASSERT_EQ(p.nodes[2].kind, NodeKind::DataMovement);
  // The Flatten's output holds r2's group (and its own, for constants it would add).
  EXPECT_EQ(p.tensors[static_cast<std::size_t>(f)].aliases, (std::vector<model::TensorId>{r2, f}));
  // r2's group is read by the Flatten and, through it, by the Gemm.
  EXPECT_EQ(p.tensors[static_cast<std::size_t>(r2)].readers, (std::vector<std::int64_t>{2, 3}));
  // Not streamed: one step per node, in graph order.
  EXPECT_EQ(p.tensors[static_cast<std::size_t>(r2)].reading_steps, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(plan::next_reading_step(p, r2, 1), 2);
  EXPECT_EQ(plan::next_reading_step(p, r2, 2), 3);
  EXPECT_EQ(plan::next_reading_step(p, r2, 3), std::numeric_limits<std::int64_t>::max());
}

TEST(EncryptedPlan, ReadingStepsFollowTheStreamedSchedule) {
  const model::Graph g = two_relus();
  plan::ScheduleOptions so;
  so.streaming = true;
  so.tile_bytes = 1;  // bands of one row
  const plan::EncryptedPlan p = plan::make_plan(g, params(g, 1.0), so);
  const auto x = g.inputs[0], r1 = tensor(g, "r1");
  // The two Relu rounds run in 4 bands each, interleaved; then the Flatten and the Gemm.
  ASSERT_EQ(p.steps.size(), 10u);
  std::vector<std::int64_t> bands_of_1, bands_of_0;
  for (std::size_t i = 0; i < p.steps.size(); ++i) {
    EXPECT_EQ(plan::step_position(p, p.steps[i]), static_cast<std::int64_t>(i));
    if (p.steps[i].node == 0) bands_of_0.push_back(static_cast<std::int64_t>(i));
    if (p.steps[i].node == 1) bands_of_1.push_back(static_cast<std::int64_t>(i));
  }
  ASSERT_EQ(bands_of_1.size(), 4u);
  EXPECT_EQ(p.tensors[static_cast<std::size_t>(x)].reading_steps, bands_of_0);
  EXPECT_EQ(p.tensors[static_cast<std::size_t>(r1)].reading_steps, bands_of_1);
  // The next use of r1's group after each of its bands is its next band, not "node 1".
  for (std::size_t b = 0; b + 1 < bands_of_1.size(); ++b) {
    EXPECT_EQ(plan::next_reading_step(p, r1, bands_of_1[b]), bands_of_1[b + 1]);
  }
  EXPECT_EQ(plan::next_reading_step(p, r1, bands_of_1.back()), std::numeric_limits<std::int64_t>::max());
  const plan::StreamStep copy = p.steps[0];
  EXPECT_THROW(plan::step_position(p, copy), std::logic_error);
}

TEST(EncryptedPlan, RoundsFromTheTileBytes) {
  const model::Graph g = two_relus();
  plan::ScheduleOptions so;
  // A Relu item: its masked input copy twice at the level read (2) and a compact reply.
  const std::int64_t item = 2 * ckks::ciphertext_bytes(4096, 2) + ckks::ciphertext_bytes(4096, 2, true);
  so.tile_bytes = 2 * 5 * item;  // half a tile per round: 5 items
  const plan::EncryptedPlan p = plan::make_plan(g, params(g, 1.0), so);
  EXPECT_EQ(p.nodes[0].round_items, 5);
  EXPECT_EQ(p.nodes[0].rounds, 4);  // 16 elements
  EXPECT_EQ(p.nodes[0].round_ciphertexts, 16);
  EXPECT_EQ(p.nodes[3].rounds, 0);  // the Gemm
  EXPECT_EQ(plan::make_plan(g, params(g, 1.0)).nodes[0].rounds, 1);  // 1 GiB tiles
}

TEST(EncryptedPlan, RoundBoundsFollowThePendingFactors) {
  const model::Graph g = two_relus();
  const plan::EncryptedPlan p = plan::make_plan(g, params(g, 3.0));
  // The first Relu reads fresh inputs; the second reads values divided by a mask < kMaskMax.
  EXPECT_DOUBLE_EQ(p.nodes[0].round_bound, 3.0 * kMaskMax);
  EXPECT_DOUBLE_EQ(p.nodes[1].round_bound, 3.0 * kMaskMax * kMaskMax);
  EXPECT_DOUBLE_EQ(p.tensors[static_cast<std::size_t>(tensor(g, "f"))].max_inverse_factor, kMaskMax * kMaskMax);
  EXPECT_DOUBLE_EQ(p.tensors[static_cast<std::size_t>(tensor(g, "y"))].max_inverse_factor, 1.0);
  EXPECT_EQ(p.nodes[3].round_bound, 0.0);
}

}  // namespace
}  // namespace heinfer
