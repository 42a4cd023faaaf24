// A curious client against the model: it chooses its batch (a reference x0, x0 + t·e_k
// and 0), records every value it decrypts in the first round and estimates the first
// layer's weight-to-bias ratio W_k / b. Per-window masks give it exactly; per-sample
// masks leave one copy's estimate wrong by more than half in most copies; a client that
// averages log|value| over many copies of a sample still reads magnitudes (the residual
// leakage docs/security.md states).
#include <gtest/gtest.h>

#include <cmath>

#include "encrypted_test_util.h"

namespace heinfer {
namespace {

using test::attr;
using test::ModelBuilder;

constexpr double kW[4] = {0.7, -0.3, 0.5, 0.2}, kBias = 0.4, kT = 0.5;
constexpr int kK = 1;  // the probed input element: W_k / b = -0.75

/// x[4] -> Gemm(1 output, bias) -> Relu -> Gemm(2): the first round has one window.
model::Graph probe_net() {
  ModelBuilder b;
  b.input("x", {4}).output("y");
  b.initializer("w1", {1, 4}, std::vector<float>(std::begin(kW), std::end(kW)));
  b.initializer("b1", {1}, std::vector<float>{static_cast<float>(kBias)});
  attr(b.node("Gemm", {"x", "w1", "b1"}, {"h"}, "fc1"), "transB", std::int64_t{1});
  b.node("Relu", {"h"}, {"r"}, "relu1");
  b.initializer("w2", {2, 1}, std::vector<float>{1.5f, -0.5f});
  attr(b.node("Gemm", {"r", "w2"}, {"y"}, "fc2"), "transB", std::int64_t{1});
  return b.load();
}

/// The attacker's batch: x0, x0 + t·e_k, 0 (the client repeats it over the slots).
runtime::PlainTensor probe_batch() {
  const double x0[4] = {0.5, 0.2, -0.1, 0.3};
  runtime::PlainTensor x = runtime::make_plain_tensor({4}, 3);
  for (std::int64_t e = 0; e < 4; ++e) {
    auto v = x.element(e);
    v[0] = x0[e];
    v[1] = x0[e] + (e == kK ? kT : 0.0);
    v[2] = 0.0;
  }
  return x;
}

struct Observation {
  std::vector<double> slots;  ///< the first round's (only) window, every slot
  double exact = 0;           ///< the true ratio W_k / b
};

Observation observe(plan::RoundMasks masks) {
  const auto g = probe_net();
  const auto x = probe_batch();
  const auto packing = ckks::Packing::Real;
  const auto plan = test::test_plan(g, x, packing, 2048, masks);
  runtime::EncryptedSession s(g, plan);
  const std::size_t slots = static_cast<std::size_t>(s.client->capacity());
  s.client->set_recording(true, slots);
  runtime::EncryptedRunStats st;
  s.executor->run(*s.client, {x}, st);
  Observation o;
  o.exact = kW[kK] / kBias;
  // Per-sample Relu rounds send x once per window (AbsWithValue): one ciphertext.
  EXPECT_EQ(s.client->observed().size(), slots);
  o.slots = s.client->observed();
  return o;
}

/// Copies j = 0.. of the batch sit in slots 3j, 3j + 1, 3j + 2.
double fraction_of_copies_within_half(const Observation& o) {
  std::size_t copies = 0, close = 0;
  for (std::size_t j = 0; 3 * j + 2 < o.slots.size(); ++j, ++copies) {
    const double* v = &o.slots[3 * j];
    const double estimate = (v[1] - v[0]) / (v[2] * kT);  // R cancels when one R masks all slots
    close += std::fabs(estimate - o.exact) < 0.5 * std::fabs(o.exact);
  }
  return static_cast<double>(close) / static_cast<double>(copies);
}

TEST(CuriousClient, PerWindowMasksGiveTheWeightRatioExactly) {
  const Observation o = observe(plan::RoundMasks::PerWindow);
  const double* v = o.slots.data();
  EXPECT_NEAR((v[1] - v[0]) / (v[2] * kT), o.exact, 1e-3 * std::fabs(o.exact));
  EXPECT_EQ(fraction_of_copies_within_half(o), 1.0);
}

TEST(CuriousClient, PerSampleMasksHideTheRatioFromEachCopy) {
  const Observation o = observe(plan::RoundMasks::PerSample);
  // One copy's estimate is within 50 % of W_k / b by chance only (about 6 % of draws).
  EXPECT_LT(fraction_of_copies_within_half(o), 0.15);
  // Signs: the masked values of one sample have both signs across its copies.
  std::size_t negative = 0, copies = 0;
  for (std::size_t s = 2; s < o.slots.size(); s += 3, ++copies) negative += o.slots[s] < 0;
  EXPECT_GT(negative, copies / 4);
  EXPECT_LT(negative, 3 * copies / 4);
}

TEST(CuriousClient, AveragingManyCopiesStillReadsMagnitudes) {
  // The residual leakage: log|μ| has a known mean, so averaging log|value| over the M
  // copies of a sample estimates log|z| with error σ(log2 μ)·sqrt(2/M) (1.7 bits / 13
  // here): |z(x0 + t·e_k)| / |b| comes out within a few tens of percent.
  const Observation o = observe(plan::RoundMasks::PerSample);
  double a[3] = {0, 0, 0};
  std::size_t copies = 0;
  for (std::size_t j = 0; 3 * j + 2 < o.slots.size(); ++j, ++copies) {
    for (int i = 0; i < 3; ++i) a[i] += std::log2(std::fabs(o.slots[3 * j + static_cast<std::size_t>(i)]));
  }
  double z1 = kBias;
  const double x0[4] = {0.5, 0.2, -0.1, 0.3};
  for (int e = 0; e < 4; ++e) z1 += kW[e] * (x0[e] + (e == kK ? kT : 0.0));
  const double estimate = std::exp2((a[1] - a[2]) / static_cast<double>(copies));
  EXPECT_NEAR(estimate, std::fabs(z1 / kBias), 0.5 * std::fabs(z1 / kBias));
}

}  // namespace
}  // namespace heinfer

namespace heinfer {
namespace {

// Unmasked rounds show what docs/security.md says they show: with the operator's
// permission (and only then: UnmaskedFunctionRoundsNeedTheOperatorsPermission in
// ops_test.cpp) a Sigmoid layer's inputs reach the client in the clear, so the same
// attacker batch reads W_k / b from one round, exactly, under either kind of masks.
TEST(CuriousClient, UnmaskedRoundsShowTheLayersInputs) {
  for (plan::RoundMasks masks : {plan::RoundMasks::PerWindow, plan::RoundMasks::PerSample}) {
    ModelBuilder b;
    b.input("x", {4}).output("y");
    b.initializer("w1", {1, 4}, std::vector<float>(std::begin(kW), std::end(kW)));
    b.initializer("b1", {1}, std::vector<float>{static_cast<float>(kBias)});
    attr(b.node("Gemm", {"x", "w1", "b1"}, {"h"}, "fc1"), "transB", std::int64_t{1});
    b.node("Sigmoid", {"h"}, {"s"}, "gate");
    b.initializer("w2", {2, 1}, std::vector<float>{1.5f, -0.5f});
    attr(b.node("Gemm", {"s", "w2"}, {"y"}, "fc2"), "transB", std::int64_t{1});
    const auto g = b.load();
    const auto x = probe_batch();
    const auto plan = test::test_plan(g, x, ckks::Packing::Real, 2048, masks);
    ASSERT_TRUE(plan.unmasked_functions);
    runtime::EncryptedSession s(g, plan);
    s.client->set_recording(true, 3);
    runtime::EncryptedRunStats st;
    s.executor->run(*s.client, {x}, st);
    const auto& v = s.client->observed();
    ASSERT_EQ(v.size(), 3u);
    // The pre-activations themselves: h = W x + b per sample, to CKKS precision.
    for (int j = 0; j < 3; ++j) {
      double h = kBias;
      for (int e = 0; e < 4; ++e) h += kW[e] * x.element(e)[static_cast<std::size_t>(j)];
      EXPECT_NEAR(v[static_cast<std::size_t>(j)], h, 1e-4);
    }
    EXPECT_NEAR((v[1] - v[0]) / (v[2] * kT), kW[kK] / kBias, 1e-3);
  }
}

}  // namespace
}  // namespace heinfer
