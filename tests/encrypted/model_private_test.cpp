// The model-private mode end to end in the encrypted executor: Relu and MaxPool (with a
// fused Relu, padded windows of one, two and four taps) evaluated on the server as
// polynomials, the client only refreshing masked ciphertexts. Checked against the same
// approximations in double (runtime/model_private_simulation.h) and the exact model.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "../common/ks_test.h"
#include "encrypted_test_util.h"
#include "ckks/evaluator.h"
#include "model/error.h"
#include "ring/modulus.h"
#include "runtime/model_private_simulation.h"

namespace heinfer {
namespace {

using test::attr;
using test::ModelBuilder;
using test::random_floats;
using test::random_input;

constexpr std::int64_t kBatch = 16;

/// Conv -> Relu -> MaxPool 2x2 (the Relu fused into it) -> Conv 1x1 -> MaxPool 2x2 with
/// padding on 3x3 (windows of 4, 2 and 1 taps) -> Flatten -> Gemm -> Relu -> Gemm.
model::Graph net() {
  ModelBuilder b;
  test::max_pool_net(&b);
  b.output("y");
  b.node("Flatten", {"p2"}, {"f"});
  b.initializer("g1", {3, 8}, random_floats(24, 43));
  attr(b.node("Gemm", {"f", "g1"}, {"h"}), "transB", std::int64_t{1});
  b.node("Relu", {"h"}, {"hr"});
  b.initializer("g2", {2, 3}, random_floats(6, 44));
  attr(b.node("Gemm", {"hr", "g2"}, {"y"}), "transB", std::int64_t{1});
  return b.load();
}

plan::Parameters private_plan(const model::Graph& g, const runtime::PlainTensor& x) {
  plan::ParameterOptions o;
  o.packing = ckks::Packing::Real;
  o.privacy = plan::Privacy::Model;
  plan::Parameters p = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), o);
  // N = 2048 keeping the chain: insecure, tests only (the 128-bit N is checked below).
  EXPECT_EQ(p.params.security_level(), ckks::SecurityLevel::TC128);
  p.params = ckks::EncryptionParameters(2048, p.params.coeff_bits(), p.params.special_bits(), ckks::SecurityLevel::None);
  return p;
}

/// The largest |y - sim| and |y - exact| and the largest |exact|.
struct Errors {
  double sim = 0, exact = 0, largest = 0;
};
Errors errors(const std::vector<double>& y, const std::vector<double>& sim, const std::vector<double>& exact) {
  EXPECT_EQ(y.size(), sim.size());
  EXPECT_EQ(y.size(), exact.size());
  Errors e;
  for (std::size_t i = 0; i < y.size() && i < sim.size() && i < exact.size(); ++i) {
    e.sim = std::max(e.sim, std::fabs(y[i] - sim[i]));
    e.exact = std::max(e.exact, std::fabs(y[i] - exact[i]));
    e.largest = std::max(e.largest, std::fabs(exact[i]));
  }
  return e;
}

/// The rounds the plan announces for the model-private nodes (what a remote client enforces).
std::int64_t planned_rounds(const runtime::EncryptedExecutor& ex) {
  std::int64_t planned = 0;
  for (const auto& [k, a] : ex.plan().private_approximations) planned += ex.plan().nodes[k].rounds;
  return planned;
}

TEST(ModelPrivate, ReluAndMaxPoolOnTheServerMatchTheApproximations) {
  const model::Graph g = net();
  const runtime::PlainTensor x = random_input({2, 6, 6}, kBatch, 45);
  const plan::Parameters p = private_plan(g, x);
  EXPECT_EQ(p.packing, ckks::Packing::Real);
  EXPECT_GT(p.refresh_mask_bits, 40 + 30);  // 40 hiding bits over at least Δ
  runtime::EncryptedSession s(g, p);
  s.client->set_recording(true, 1024);
  runtime::EncryptedRunStats stats;
  const auto y = runtime::to_batch_major(s.executor->run(*s.client, {x}, stats)[0]);
  const auto& approx = s.executor->plan().private_approximations;
  ASSERT_EQ(approx.size(), 4u);  // the fused Relu, both pools, the Gemm's Relu
  const auto sim = runtime::to_batch_major(runtime::run_plain_approximated(g, {x}, approx)[0]);
  const auto exact = runtime::to_batch_major(runtime::run_plain(g, {x})[0]);
  const auto [err_sim, err_exact, largest] = errors(y, sim, exact);
  EXPECT_GT(largest, 0.1);
  EXPECT_LT(err_sim, 1e-3 * (1 + largest));   // CKKS noise only
  EXPECT_LT(err_exact, 3e-2 * (1 + largest));  // plus the approximations (η = 2^-7 of each bound)
  // Every round was a blind refresh: the client saw uniformly masked coefficients only,
  // in [-1, 1) once divided by R (LocalClient records c / R), up to the hidden 2^-40.
  EXPECT_GT(stats.rounds, 0);
  EXPECT_LE(stats.rounds, planned_rounds(*s.executor));
  ASSERT_FALSE(s.client->observed().empty());
  for (double v : s.client->observed()) ASSERT_LT(std::fabs(v), 1.0 + 1e-9);
  std::printf("model-private: %lld rounds, %.1f MB to the client; max error %.2e vs the approximations, %.2e vs "
              "exact (largest |y| %.2f); %s\n",
              static_cast<long long>(stats.rounds), static_cast<double>(stats.bytes_to_client) / 1e6, err_sim,
              err_exact, largest, p.describe().c_str());
}

/// The client's side of a run, recording what it made (its refresh replies) and what it
/// was given to decrypt (the outputs): a curious client.
class RecordingClient final : public runtime::Client {
 public:
  RecordingClient(runtime::LocalClient& c, const ckks::CKKSContext& ctx) : c_(c), ctx_(ctx) {}
  std::int64_t capacity() const override { return c_.capacity(); }
  std::int64_t batch() const override { return c_.batch(); }
  std::vector<ckks::Ciphertext> encrypt(const runtime::EncryptRequest& r) override { return c_.encrypt(r); }
  bool encrypts_parts() const override { return c_.encrypts_parts(); }
  std::vector<ckks::Ciphertext> round(const runtime::RoundRequest& r) override {
    auto reply = c_.round(r);
    for (ckks::Ciphertext c : reply) {
      if (c.is_compact()) c.expand(ctx_);
      made.push_back(std::move(c));
    }
    return reply;
  }
  runtime::PlainTensor decrypt(const std::vector<const ckks::Ciphertext*>& cts, const std::vector<double>& factors,
                               const model::Shape& shape, std::int64_t batch, const std::string& layer,
                               double bound) override {
    for (const ckks::Ciphertext* c : cts) {
      if (!c) continue;
      outputs.push_back(*c);
      if (outputs.back().is_compact()) outputs.back().expand(ctx_);
    }
    return c_.decrypt(cts, factors, shape, batch, layer, bound);
  }
  std::vector<ckks::Ciphertext> made, outputs;

 private:
  runtime::LocalClient& c_;
  const ckks::CKKSContext& ctx_;
};

/// The attack: whether c_1 of `out` is m·c_1 of one of the client's own ciphertexts, for
/// a small integer m (the weights of a layer that adds without rescaling), on the first
/// 64 coefficients of every limb `out` has.
bool c1_is_a_multiple_of_one_made(const ckks::Ciphertext& out, const std::vector<ckks::Ciphertext>& made,
                                  const ckks::CKKSContext& ctx) {
  for (const ckks::Ciphertext& c : made) {
    for (std::int64_t m = -4; m <= 4; ++m) {
      bool fits = m != 0 && c.level() >= out.level();
      for (std::size_t i = 0; i <= out.level() && fits; ++i) {
        const ring::Modulus& q = ctx.modulus(i);
        const uint64_t mm = m < 0 ? q.value - static_cast<uint64_t>(-m) : static_cast<uint64_t>(m);
        for (std::size_t k = 0; k < 64 && fits; ++k) fits = ring::mul_mod(c.limb(1, i)[k], mm, q) == out.limb(1, i)[k];
      }
      if (fits) return true;
    }
  }
  return false;
}

TEST(ModelPrivate, TheOutputsShowTheClientNeitherItsOwnSecondComponentsNorTheNoise) {
  // y = Relu(x·W), an output. The Relu's result comes back to the server as the
  // client's own fresh ciphertext c minus the mask r, which touches c_0 only: sent as it
  // is, its c_1 is the client's own (found below among the ones it made) and c_0 differs
  // from the client's by r, so the client reads r and, from the masked coefficients it
  // decrypted in the round, the noise of the value refreshed (which depends on the
  // weights). The same holds for any layer that adds or moves refreshed ciphertexts
  // without rescaling. The outputs the client receives are re-randomized and flooded:
  // no candidate fits, and the flooding costs under 2^-10 of the output range.
  ModelBuilder b;
  b.input("x", {4}).output("y");
  b.initializer("w", {4, 2}, random_floats(8, 48));
  b.node("MatMul", {"x", "w"}, {"h"});
  b.node("Relu", {"h"}, {"y"});
  const model::Graph g = b.load();
  const runtime::PlainTensor x = random_input({4}, kBatch, 49);
  const plan::Parameters p = private_plan(g, x);
  runtime::EncryptedSession s(g, p);
  RecordingClient client(*s.client, *s.context);
  std::vector<runtime::PlainTensor> inputs{x};
  s.client->set_inputs(&inputs);
  runtime::EncryptedRunStats stats;
  const auto y = runtime::to_batch_major(s.executor->run(client, stats)[0]);
  s.client->set_inputs(nullptr);
  ASSERT_EQ(client.outputs.size(), 2u);
  ASSERT_FALSE(client.made.empty());
  // The attack works on what a layer that adds without rescaling would send unprotected:
  // a refreshed ciphertext plus itself.
  ckks::Ciphertext twice;
  ckks::Evaluator(s.context).add(client.made.back(), client.made.back(), twice);
  EXPECT_TRUE(c1_is_a_multiple_of_one_made(twice, client.made, *s.context));
  for (const ckks::Ciphertext& out : client.outputs) {
    EXPECT_FALSE(c1_is_a_multiple_of_one_made(out, client.made, *s.context));
  }
  const auto sim = runtime::to_batch_major(
      runtime::run_plain_approximated(g, {x}, s.executor->plan().private_approximations)[0]);
  double err = 0, largest = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    err = std::max(err, std::fabs(y[i] - sim[i]));
    largest = std::max(largest, std::fabs(sim[i]));
  }
  EXPECT_GT(largest, 0.1);
  EXPECT_LT(err, 1e-3 * (1 + largest));
}

/// Conv -> Relu -> MaxPool 2x2 -> Flatten -> Gemm -> Relu -> Gemm, weights drawn from `seed`.
model::Graph weighted_net(std::uint32_t seed) {
  ModelBuilder b;
  b.input("x", {2, 6, 6}).output("y");
  b.initializer("w", {2, 2, 3, 3}, random_floats(36, seed));
  attr(b.node("Conv", {"x", "w"}, {"c"}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c"}, {"r"});
  auto& p = b.node("MaxPool", {"r"}, {"p"});
  attr(p, "kernel_shape", std::vector<std::int64_t>{2, 2});
  attr(p, "strides", std::vector<std::int64_t>{2, 2});
  b.node("Flatten", {"p"}, {"f"});
  b.initializer("g1", {4, 18}, random_floats(72, seed + 1));
  attr(b.node("Gemm", {"f", "g1"}, {"h"}), "transB", std::int64_t{1});
  b.node("Relu", {"h"}, {"hr"});
  b.initializer("g2", {2, 4}, random_floats(8, seed + 2));
  attr(b.node("Gemm", {"hr", "g2"}, {"y"}), "transB", std::int64_t{1});
  return b.load();
}

/// Everything a curious client decrypts in the rounds of one run of g on x (not the
/// outputs): per window, the first 1,024 values (slots, or refresh coefficients / R).
std::vector<double> recorded_by_client(const model::Graph& g, const runtime::PlainTensor& x, plan::Privacy privacy) {
  plan::ParameterOptions o;
  o.packing = ckks::Packing::Real;
  o.privacy = privacy;
  if (privacy == plan::Privacy::Activations) o.masks = plan::RoundMasks::PerSample;  // serve's, in that mode
  plan::Parameters p = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), o);
  p.params = ckks::EncryptionParameters(2048, p.params.coeff_bits(), p.params.special_bits(), ckks::SecurityLevel::None);
  runtime::EncryptedSession s(g, p);
  s.client->set_recording(true, 1024);
  runtime::EncryptedRunStats stats;
  (void)s.executor->run(*s.client, {x}, stats);
  return s.client->observed();
}

TEST(ModelPrivate, ACuriousClientCannotTellTwoModelsApart) {
  // Two models that differ only in their weights, the same inputs. In the model-private
  // mode the client's records are uniform masks: a two-sample Kolmogorov–Smirnov test
  // does not tell the models apart, and the values span the mask range [-R, R). The
  // same test on the client-aided mode's records (per-sample masks) tells them apart.
  // The masks come from the CSPRNG, so under the claim p is uniform on [0, 1]: a p below
  // 0.01 happens once in a hundred runs by chance, and once more with fresh masks once
  // in 10^4; a real difference fails both.
  const runtime::PlainTensor x = random_input({2, 6, 6}, kBatch, 55);
  std::vector<double> a, b;
  double p_private = 0;
  for (int attempt = 0; attempt < 2 && p_private <= 0.01; ++attempt) {
    a = recorded_by_client(weighted_net(61), x, plan::Privacy::Model);
    b = recorded_by_client(weighted_net(71), x, plan::Privacy::Model);
    p_private = test::ks_p_value(a, b);
  }
  ASSERT_GE(a.size(), 100000u);
  ASSERT_GE(b.size(), 100000u);
  EXPECT_GT(p_private, 0.01);
  for (const auto* v : {&a, &b}) {
    const auto [lo, hi] = std::minmax_element(v->begin(), v->end());
    EXPECT_GE(*lo, -1.0);
    EXPECT_LT(*hi, 1.0);
    EXPECT_LT(*lo, -0.99);
    EXPECT_GT(*hi, 0.99);
  }
  const auto ca = recorded_by_client(weighted_net(61), x, plan::Privacy::Activations);
  const auto cb = recorded_by_client(weighted_net(71), x, plan::Privacy::Activations);
  const double p_aided = test::ks_p_value(ca, cb);
  EXPECT_LT(p_aided, 1e-6);
  std::printf("KS p-value, model-private: %.3f over %zu and %zu values; client-aided: %.2g over %zu and %zu\n",
              p_private, a.size(), b.size(), p_aided, ca.size(), cb.size());
}

TEST(ModelPrivate, ClipAndLeakyReluAreCombinationsOfRelus) {
  // ReLU6-like Clip(0, 0.5), a Clip with an upper bound only, LeakyRelu(0.2): each a sum of
  // approximated Relus (plan::relu_combination) in the same rounds, checked against the
  // same approximations in double and against the exact model.
  ModelBuilder b;
  b.input("x", {6}).output("y");
  b.initializer("w", {6, 6}, random_floats(36, 56));
  b.node("MatMul", {"x", "w"}, {"h"});
  b.initializer("lo", {}, {0.0f});
  b.initializer("hi", {}, {0.5f});
  b.node("Clip", {"h", "lo", "hi"}, {"c"});
  b.initializer("w2", {6, 6}, random_floats(36, 57));
  b.node("MatMul", {"c", "w2"}, {"h2"});
  b.node("Clip", {"h2", "", "hi"}, {"c2"});
  b.initializer("w3", {6, 4}, random_floats(24, 58));
  b.node("MatMul", {"c2", "w3"}, {"h3"});
  attr(b.node("LeakyRelu", {"h3"}, {"y"}), "alpha", 0.2f);
  const model::Graph g = b.load();
  const runtime::PlainTensor x = random_input({6}, kBatch, 59);
  const plan::Parameters p = private_plan(g, x);
  runtime::EncryptedSession s(g, p);
  s.client->set_recording(true, 256);
  runtime::EncryptedRunStats stats;
  const auto y = runtime::to_batch_major(s.executor->run(*s.client, {x}, stats)[0]);
  const auto& approx = s.executor->plan().private_approximations;
  ASSERT_EQ(approx.size(), 3u);
  const auto sim = runtime::to_batch_major(runtime::run_plain_approximated(g, {x}, approx)[0]);
  const auto exact = runtime::to_batch_major(runtime::run_plain(g, {x})[0]);
  const auto [err_sim, err_exact, largest] = errors(y, sim, exact);
  EXPECT_GT(largest, 0.05);
  EXPECT_LT(err_sim, 1e-3 * (1 + largest));
  EXPECT_LT(err_exact, 3e-2 * (1 + largest));
  for (double v : s.client->observed()) ASSERT_LT(std::fabs(v), 1.0 + 1e-9);
  EXPECT_LE(stats.rounds, planned_rounds(*s.executor));
  std::printf("Clip, Clip(max), LeakyRelu: %lld rounds; max error %.2e vs the approximations, %.2e vs exact\n",
              static_cast<long long>(stats.rounds), err_sim, err_exact);
}

TEST(ModelPrivate, RefusesWhatItDoesNotEvaluateHomomorphically) {
  ModelBuilder b;
  b.input("x", {4}).output("y");
  b.initializer("w", {4, 4}, random_floats(16, 46));
  b.node("MatMul", {"x", "w"}, {"h"});
  b.node("Sigmoid", {"h"}, {"y"});
  const model::Graph g = b.load();
  const runtime::PlainTensor x = random_input({4}, kBatch, 47);
  plan::ParameterOptions o;
  o.packing = ckks::Packing::Real;
  o.privacy = plan::Privacy::Model;
  const plan::Parameters p = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), o);
  EXPECT_THROW(plan::make_plan(g, p), model::ModelError);
  o.packing = ckks::Packing::Complex;  // the polynomials act on real slots
  EXPECT_THROW(plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), o), std::invalid_argument);
}

}  // namespace
}  // namespace heinfer
