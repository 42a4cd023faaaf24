// Client-aided protocol: masking randomness and order, range/overflow checks, bad inputs,
// parameter selection, wire sizes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "ckks/serialization.h"
#include "ckks/keygen.h"
#include "ckks/sizes.h"
#include "encrypted_test_util.h"

namespace heinfer {
namespace {

using ckks::Packing;
using test::attr;
using test::ModelBuilder;
using test::random_floats;
using test::random_input;

/// x -> Gemm(identity-like, 1 level) -> Relu -> Gemm: one Relu round over 16 elements.
model::Graph relu_net() {
  ModelBuilder b;
  b.input("x", {16}).output("y");
  std::vector<float> w(16 * 16, 0.0f);
  for (int i = 0; i < 16; ++i) w[static_cast<std::size_t>(i * 16 + i)] = 0.5f;
  b.initializer("w", {16, 16}, w);
  attr(b.node("Gemm", {"x", "w"}, {"h"}, "fc1"), "transB", std::int64_t{1});
  b.node("Relu", {"h"}, {"r"}, "relu1");
  b.initializer("w2", {3, 16}, random_floats(48, 2));
  attr(b.node("Gemm", {"r", "w2"}, {"y"}, "fc2"), "transB", std::int64_t{1});
  return b.load();
}

/// Sample 0 holds distinct values with alternating signs (element e: ±(e + 1)).
runtime::PlainTensor signed_input(std::int64_t batch) {
  runtime::PlainTensor x = runtime::make_plain_tensor({16}, batch);
  for (std::int64_t e = 0; e < 16; ++e) {
    for (std::int64_t b = 0; b < batch; ++b) x.element(e)[static_cast<std::size_t>(b)] = (e % 2 ? -1.0 : 1.0) * static_cast<double>(e + 1) * (1.0 + 0.01 * static_cast<double>(b));
  }
  return x;
}

TEST(EncryptedProtocol, MaskingRandomizesValuesAndOrder) {
  const auto g = relu_net();
  const auto x = signed_input(4);
  const auto plan = test::test_plan(g, x, ckks::Packing::Complex, 2048);
  std::vector<std::vector<double>> seen;
  for (int run = 0; run < 2; ++run) {
    runtime::EncryptedSession s(g, plan);
    s.client->set_recording(true);
    runtime::EncryptedRunStats st;
    const auto y = s.executor->run(*s.client, {x}, st);
    EXPECT_EQ(st.rounds, 1);
    seen.push_back(s.client->observed());
    ASSERT_EQ(seen.back().size(), 16u);
    // In element order the client would see v_e = R_e * 0.5 * x_e with R_e in [128, 4096):
    // after the shuffle, the ratio to the element-order value is not in that range for all.
    int consistent = 0;
    for (std::size_t e = 0; e < 16; ++e) {
      const double h = 0.5 * x.element(static_cast<std::int64_t>(e))[0];
      const double r = seen.back()[e] / h;
      consistent += r >= plan::kMaskMin * 0.999 && r < plan::kMaskMax * 1.001;
      // The client never sees an unmasked value (|0.5 x_e| >= 0.5, masks >= 128).
      EXPECT_GE(std::fabs(seen.back()[e]), 0.5 * plan::kMaskMin * 0.999);
    }
    EXPECT_LT(consistent, 16) << "values arrived in element order";
    // Magnitudes: every observed value is some 0.5 * x_e times a mask in range.
    for (double v : seen.back()) {
      bool explained = false;
      for (std::int64_t e = 0; e < 16; ++e) {
        const double r = v / (0.5 * x.element(e)[0]);
        explained = explained || (r >= plan::kMaskMin * 0.999 && r < plan::kMaskMax * 1.001);
      }
      EXPECT_TRUE(explained) << v;
    }
  }
  auto a = seen[0], b = seen[1];
  EXPECT_NE(a, b);
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_NE(a, b) << "the masks did not change between runs";
}

TEST(EncryptedProtocol, BadInputsAreRejectedBeforeEncryption) {
  const auto g = relu_net();
  const auto x = signed_input(3);
  const auto plan = test::test_plan(g, x, ckks::Packing::Complex, 2048);
  runtime::EncryptedSession s(g, plan);
  runtime::EncryptedRunStats st;
  // Wrong per-sample shape.
  EXPECT_THROW(s.executor->run(*s.client, {runtime::make_plain_tensor({15}, 3)}, st), model::ModelError);
  // Batch beyond the slots.
  EXPECT_THROW(s.executor->run(*s.client, {runtime::make_plain_tensor({16}, 4096)}, st), model::ModelError);
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    auto y = x;
    y.data[5] = bad;
    try {
      s.executor->run(*s.client, {y}, st);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const runtime::InputError& e) {
      EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
    }
  }
  // Beyond the planned range (calibrated on x, margin 2).
  auto big = x;
  big.data[0] = 1000.0;
  try {
    s.executor->run(*s.client, {big}, st);
    ADD_FAILURE() << "no range error";
  } catch (const runtime::InputError& e) {
    EXPECT_NE(std::string(e.what()).find("planned input range"), std::string::npos) << e.what();
  }
  EXPECT_EQ(st.rounds, 0);  // nothing reached a round
}

TEST(EncryptedProtocol, OverflowIsReportedWithTheLayer) {
  const auto g = relu_net();
  const auto x = signed_input(3);
  auto plan = test::test_plan(g, x, ckks::Packing::Complex, 2048);
  // The first layer's planned range is much smaller than its real values: the client
  // detects it in the Relu round and names the producing layer (fc1) and the round.
  for (std::size_t t = 0; t < g.tensors.size(); ++t) {
    if (g.tensors[t].name == "h") plan.bounds[t] = 1e-3;
  }
  runtime::EncryptedSession s(g, plan);
  runtime::EncryptedRunStats st;
  try {
    s.executor->run(*s.client, {x}, st);
    ADD_FAILURE() << "no overflow reported";
  } catch (const runtime::OverflowError& e) {
    EXPECT_NE(std::string(e.what()).find("layer 'fc1 -> relu1'"), std::string::npos) << e.what();
  }
  // Output overflow: names the output tensor.
  auto plan2 = test::test_plan(g, x, ckks::Packing::Complex, 2048);
  plan2.bounds[static_cast<std::size_t>(g.outputs[0])] = 1e-6;
  runtime::EncryptedSession s2(g, plan2);
  try {
    s2.executor->run(*s2.client, {x}, st);
    ADD_FAILURE() << "no overflow reported";
  } catch (const runtime::OverflowError& e) {
    EXPECT_NE(std::string(e.what()).find("layer 'fc2 (output y)'"), std::string::npos) << e.what();
  }
}

TEST(EncryptedProtocol, ResidualAddOfMaskedAndLinearTensors) {
  // Relu output (pending factors, top level) + a linear tensor (lower level).
  ModelBuilder b;
  b.input("x", {2, 5, 5}).output("y");
  b.initializer("w1", {2, 2, 3, 3}, random_floats(36, 61));
  attr(b.node("Conv", {"x", "w1"}, {"c1"}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c1"}, {"r1"});
  b.initializer("w2", {2, 2, 3, 3}, random_floats(36, 62));
  attr(b.node("Conv", {"r1", "w2"}, {"c2"}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Add", {"c2", "r1"}, {"a"});
  b.node("Flatten", {"a"}, {"f"});
  b.initializer("w3", {3, 50}, random_floats(150, 63));
  attr(b.node("Gemm", {"f", "w3"}, {"y"}), "transB", std::int64_t{1});
  const auto g = b.load();
  const auto c = test::compare(g, random_input({2, 5, 5}, 9, 64), ckks::Packing::Complex);
  EXPECT_LE(c.max_abs_error, 1e-3 * (1 + c.max_abs_plain));
  // Per-sample masks: the Relu output is unmasked one level below the top.
  const auto s = test::compare(g, random_input({2, 5, 5}, 9, 64), ckks::Packing::Real, 2048, plan::RoundMasks::PerSample);
  EXPECT_LE(s.max_abs_error, 1e-3 * (1 + s.max_abs_plain));
}

TEST(EncryptedProtocol, ParameterSelectionIsSecureAndSufficient) {
  const auto g = relu_net();
  const auto x = signed_input(3);
  plan::ParameterOptions o;
  const auto plan = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), o);
  EXPECT_EQ(plan.needs.levels, 1);  // fc1 (1), relu restarts, fc2 folds 1/R (1)
  const std::size_t n = plan.params.poly_modulus_degree();
  int total = 0;
  for (int bits : plan.params.coeff_bits()) total += bits;
  for (int bits : plan.params.special_bits()) total += bits;
  EXPECT_LE(total, ckks::max_log_qp_128(n));
  EXPECT_GT(total, ckks::max_log_qp_128(n / 2));  // the smallest secure N
  EXPECT_EQ(plan.params.security_level(), ckks::SecurityLevel::TC128);
  runtime::EncryptedSession s(g, plan);  // creating the context checks security again
  runtime::EncryptedRunStats st;
  const auto y = runtime::to_batch_major(s.executor->run(*s.client, {x}, st)[0]);
  const auto ref = runtime::to_batch_major(runtime::run_plain(g, {x})[0]);
  for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-3 * (1 + std::fabs(ref[i])));
}

/// relu_net with the Relu replaced by a square (ciphertext × ciphertext: relinearization).
model::Graph square_net() {
  ModelBuilder b;
  b.input("x", {16}).output("y");
  b.initializer("w", {4, 16}, random_floats(64, 5));
  attr(b.node("Gemm", {"x", "w"}, {"h"}, "fc1"), "transB", std::int64_t{1});
  b.node("Mul", {"h", "h"}, {"s"}, "square");
  b.initializer("w2", {3, 4}, random_floats(12, 6));
  attr(b.node("Gemm", {"s", "w2"}, {"y"}, "fc2"), "transB", std::int64_t{1});
  return b.load();
}

TEST(EncryptedProtocol, NoSpecialPrimeWhenNothingSwitchesKeys) {
  // Linear layers and client rounds only: no special prime, no evaluation key, and the
  // 128-bit bound is met by log2(Q) alone (the smallest N for it).
  const auto g = relu_net();
  const auto x = signed_input(3);
  ASSERT_FALSE(plan::needs_key_switching(g));
  const auto plan = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}));
  EXPECT_FALSE(plan.key_switching);
  EXPECT_TRUE(plan.params.special_bits().empty());
  int q = 0;
  for (int bits : plan.params.coeff_bits()) q += bits;
  const std::size_t n = plan.params.poly_modulus_degree();
  EXPECT_LE(q, ckks::max_log_qp_128(n));
  EXPECT_GT(q, ckks::max_log_qp_128(n / 2));
  runtime::EncryptedSession s(g, plan);
  EXPECT_EQ(s.context->special_count(), 0u);
  const auto& keys = s.client->evaluation_keys();
  EXPECT_EQ(keys.relin.key.digits, 0u);
  EXPECT_TRUE(keys.galois.keys.empty());
  runtime::EncryptedRunStats st;
  const auto y = runtime::to_batch_major(s.executor->run(*s.client, {x}, st)[0]);
  const auto ref = runtime::to_batch_major(runtime::run_plain(g, {x})[0]);
  for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-3 * (1 + std::fabs(ref[i])));
  // No key-switching key can be made from such parameters.
  ckks::KeyGenerator keygen(s.context);
  EXPECT_THROW(keygen.create_relin_keys(), std::invalid_argument);
  EXPECT_THROW(keygen.create_galois_keys({}, true), std::invalid_argument);
  // An override may leave out the special prime here, not for a model that squares.
  auto copy = plan;
  plan::apply_parameter_override(copy, 8192, {50, 30, 30}, {}, 30);
  EXPECT_TRUE(copy.params.special_bits().empty());

  const auto sq = square_net();
  const auto xs = signed_input(3);
  ASSERT_TRUE(plan::needs_key_switching(sq));
  auto sq_plan = plan::plan_parameters(sq, runtime::calibrate_ranges(sq, {xs}));
  EXPECT_TRUE(sq_plan.key_switching);
  ASSERT_EQ(sq_plan.params.special_bits().size(), 1u);
  try {
    plan::apply_parameter_override(sq_plan, 8192, {50, 30, 30}, {}, 30);
    ADD_FAILURE() << "accepted no special prime for a model that multiplies ciphertexts";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("special_bits must be non-empty"), std::string::npos) << e.what();
  }
}

TEST(EncryptedProtocol, PrimesOfAtMost31BitsSplitQ0AndStillDecrypt) {
  // Every limb in a 32-bit word: q_0 becomes two primes that the run never rescales away,
  // so the outputs are decrypted at level 1.
  const auto g = relu_net();
  const auto x = signed_input(3);
  plan::ParameterOptions o;
  o.max_prime_bits = 31;
  const auto plan = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), o);
  plan::ParameterOptions w;
  w.max_prime_bits = 60;  // q_0 in one prime
  const auto wide = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), w);
  ASSERT_GT(wide.params.coeff_bits()[0], 31);
  EXPECT_EQ(plan.needs.levels, wide.needs.levels);
  EXPECT_EQ(plan.params.coeff_bits().size(), wide.params.coeff_bits().size() + 1);
  for (int bits : plan.params.coeff_bits()) EXPECT_LE(bits, 31);
  for (int bits : plan.params.special_bits()) EXPECT_LE(bits, 31);
  runtime::EncryptedSession s(g, plan);
  runtime::EncryptedRunStats st;
  const auto y = runtime::to_batch_major(s.executor->run(*s.client, {x}, st)[0]);
  const auto ref = runtime::to_batch_major(runtime::run_plain(g, {x})[0]);
  for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-3 * (1 + std::fabs(ref[i])));
  o.max_prime_bits = 29;  // below the scale
  EXPECT_THROW(plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), o), std::invalid_argument);
}

TEST(EncryptedProtocol, InsufficientOrInsecureOverrideIsAClearError) {
  const auto g = relu_net();
  const auto x = signed_input(3);
  auto plan = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}));
  auto expect_error = [&](std::size_t n, std::vector<int> q, std::vector<int> p, const std::string& what) {
    auto copy = plan;
    try {
      plan::apply_parameter_override(copy, n, q, p, 30);
      ADD_FAILURE() << "accepted " << what;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error(8192, {50}, {50}, "insufficient modulus: the model needs 1 levels");
  expect_error(8192, {32, 30}, {40}, "insufficient modulus: q_0");
  expect_error(2048, {50, 30}, {50}, "insecure");
  expect_error(8192, {50, 30}, {40}, "special prime");
  expect_error(8192, {50, 30}, {70}, "no such primes");  // found by fuzz_parameters_json
  // A valid override is taken as is; the file form parses the same fields.
  const auto file = std::filesystem::temp_directory_path() / "heinfer_params_test.json";
  std::ofstream(file) << R"({"n": 8192, "coeff_bits": [50, 30, 30], "special_bits": [50], "scale_bits": 30})";
  plan::apply_parameter_override(plan, file);
  EXPECT_EQ(plan.params.poly_modulus_degree(), 8192u);
  EXPECT_EQ(plan.params.coeff_bits().size(), 3u);
  std::ofstream(file) << R"({"n": 8192, "coeff": [50]})";
  EXPECT_THROW(plan::apply_parameter_override(plan, file), std::invalid_argument);
  // Numbers that do not convert safely are refused before converting (fuzz_parameters_json).
  for (const char* bad : {R"({"n": 184467440737095516160, "coeff_bits": [50, 30], "special_bits": [50]})",
                          R"({"n": 8192.5, "coeff_bits": [50, 30], "special_bits": [50]})",
                          R"({"n": 8192, "coeff_bits": [50, 1e300], "special_bits": [50]})",
                          R"({"n": 8192, "coeff_bits": [50, 30], "special_bits": [50], "scale_bits": -7})"}) {
    std::ofstream(file) << bad;
    EXPECT_THROW(plan::apply_parameter_override(plan, file), std::invalid_argument) << bad;
  }
  std::filesystem::remove(file);
}

TEST(EncryptedProtocol, WireBytesMatchSerialization) {
  const auto g = relu_net();
  const auto x = signed_input(3);
  const auto plan = test::test_plan(g, x, ckks::Packing::Complex, 2048);
  runtime::EncryptedSession s(g, plan);
  auto cts = s.client->encrypt_tensor(x, "x", 1e9);
  ASSERT_TRUE(cts[0].is_compact());
  EXPECT_EQ(ckks::serialized_size(cts[0], *s.context),
            static_cast<std::int64_t>(ckks::to_bytes(cts[0], *s.context).size()));
  cts[0].expand(*s.context);
  ckks::Ciphertext full;
  ckks::Evaluator(s.context).add(cts[0], cts[0], full);
  EXPECT_EQ(ckks::serialized_size(full, *s.context), static_cast<std::int64_t>(ckks::to_bytes(full, *s.context).size()));
}

}  // namespace
}  // namespace heinfer

namespace heinfer {
namespace {

TEST(EncryptedProtocol, BatchLargerThanTheSlotsRunsInSequence) {
  const auto g = relu_net();
  const std::int64_t count = 2100;  // N = 2048 complex packing: 2048 per ciphertext batch
  const auto x = test::random_input({16}, count, 71, -3, 3);
  const auto plan = test::test_plan(g, x, ckks::Packing::Complex, 2048);
  ASSERT_EQ(plan.capacity(), 2048);
  runtime::EncryptedSession s(g, plan);
  runtime::EncryptedRunStats st;
  std::vector<double> seconds;
  const auto xb = runtime::to_batch_major(x);
  const auto y = s.run_batched(xb, count, 100000, st, &seconds);
  EXPECT_EQ(seconds.size(), 2u);  // 2048 + 52
  EXPECT_EQ(st.rounds, 2);
  const auto ref = runtime::to_batch_major(runtime::run_plain(g, {x})[0]);
  ASSERT_EQ(y.size(), ref.size());
  for (std::size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-3 * (1 + std::fabs(ref[i])));
}

}  // namespace
}  // namespace heinfer
