// ONNX backend conformance, encrypted: every libonnx-testdata case that passes in
// plaintext (tests/runtime/conformance_test.cpp; discovery and input binding shared via
// tests/common/onnx_conformance.h) is run through the encrypted executor with the real
// 128-bit parameter selection (calibrate_ranges on the test input, plan_parameters with
// the default options: complex packing, Δ = 2^30) and compared with the expected outputs.
//
// Tolerance (per output tensor y with reference r):
//   max_i |y_i - r_i| <= 1e-3 * max(‖r‖∞, 1e-3)
// i.e. relative 1e-3 of the output's largest magnitude. CKKS noise is absolute and
// proportional to the magnitudes flowing through the circuit, so the error is measured
// against the tensor's scale rather than per element (a per-element relative bound would
// be meaningless for elements that are ~0). The floor 1e-3 only matters for outputs that
// are (almost) all zero, where it becomes an absolute 1e-6.
//
// Cases not run encrypted (refused by the encrypted path, or over the test's ciphertext
// budget) are listed in conformance_encrypted_refused.inc with the reason and a substring
// of the expected error; they are asserted to fail with that error. Contexts and keys are shared between
// cases with identical parameters.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>

#include "../common/onnx_conformance.h"
#include "ckks/context.h"
#include "model/error.h"
#include "runtime/encrypted_executor.h"
#include "runtime/local_client.h"
#include "plan/parameters.h"
#include "runtime/calibration.h"

namespace heinfer {
namespace {

using test::conformance::all_cases;
using test::conformance::Case;
using test::conformance::kRoot;
namespace fs = std::filesystem;

constexpr double kRelTol = 1e-3;

/// Test budget: batch-axis packing puts one ciphertext per element of a per-sample
/// tensor, so cases whose largest tensor has more elements than this (up to 10^6 in the
/// suite: tens of GB of ciphertexts) are not run; they are listed in the .inc file with
/// the reason "exceeds the test's ciphertext budget" and asserted to exceed it.
constexpr std::int64_t kMaxCiphertextsPerTensor = 4096;

struct Refusal {
  std::string reason;  ///< short category, reported in the summary
  std::string error;   ///< substring of the expected exception message
};

/// Cases the plaintext executor rejects (tests/runtime/conformance_unsupported.inc):
/// they are not run encrypted.
const std::map<std::string, std::string>& plain_unsupported() {
  static const std::map<std::string, std::string> m = {
#include "../runtime/conformance_unsupported.inc"
  };
  return m;
}

/// Cases the encrypted executor refuses: case name -> reason and expected error.
const std::map<std::string, Refusal>& refused() {
  static const std::map<std::string, Refusal> m = {
#include "conformance_encrypted_refused.inc"
  };
  return m;
}

/// Context and client (secret + evaluation keys) for one parameter set.
struct Keys {
  ckks::ContextPtr context;
  std::unique_ptr<runtime::LocalClient> client;
};

std::string params_key(const plan::Parameters& p) {
  std::ostringstream k;
  k << p.params.poly_modulus_degree() << '/';
  for (int b : p.params.coeff_bits()) k << b << ',';
  k << '/';
  for (int b : p.params.special_bits()) k << b << ',';
  k << '/' << static_cast<int>(p.packing) << '/' << p.scale_bits;
  return k.str();
}

Keys& keys_for(const plan::Parameters& plan) {
  static std::map<std::string, Keys> cache;
  Keys& k = cache[params_key(plan)];
  if (!k.context) {
    k.context = ckks::CKKSContext::create(plan.params);
    k.client = std::make_unique<runtime::LocalClient>(k.context, plan.packing, plan.scale());
    k.client->evaluation_keys();
  }
  return k;
}

/// Runs one case encrypted; returns "" on success or a description of the mismatch.
/// Throws whatever the encrypted path throws for refused models.
std::string run_case_encrypted(const Case& c) {
  const onnx::ModelProto m = test::conformance::load_model_proto(c);
  const std::vector<fs::path> sets = test::conformance::test_sets(c);
  if (sets.empty()) return "no test_data_set";
  std::string failures;
  for (const fs::path& set : sets) {
    const test::conformance::BoundSet b = test::conformance::bind_set(m, set);
    std::int64_t largest = 0;
    for (const auto& t : b.graph.tensors) largest = std::max(largest, model::numel(t.shape));
    if (largest > kMaxCiphertextsPerTensor) {
      throw std::runtime_error("a tensor needs " + std::to_string(largest) +
                               " ciphertexts: exceeds the test budget of " +
                               std::to_string(kMaxCiphertextsPerTensor));
    }
    plan::ParameterOptions po;
    po.unmasked_functions = true;  // Sigmoid, Tanh, ... cases run as unmasked rounds
    const plan::Parameters plan = plan::plan_parameters(b.graph, runtime::calibrate_ranges(b.graph, b.inputs), po);
    Keys& k = keys_for(plan);
    const runtime::EncryptedExecutor ex(b.graph, plan::make_plan(b.graph, plan), k.context, k.client->evaluation_keys());
    runtime::EncryptedRunStats stats;
    const auto outputs = ex.run(*k.client, b.inputs, stats);
    for (std::size_t o = 0; o < outputs.size(); ++o) {
      const model::TensorValue ref = test::conformance::reference_output(set, o);
      model::Shape got{outputs[o].batch};
      got.insert(got.end(), outputs[o].shape.begin(), outputs[o].shape.end());
      if (got != ref.dims) {
        failures += "output " + std::to_string(o) + " shape " + model::to_string(got) + " != reference " +
                    model::to_string(ref.dims) + "; ";
        continue;
      }
      const std::vector<double> y = runtime::to_batch_major(outputs[o]);
      double scale = 0, worst = 0;
      for (double r : ref.data) scale = std::max(scale, std::abs(r));
      for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(y[i] - ref.data[i]));
      const double tol = kRelTol * std::max(scale, 1e-3);
      if (!(worst <= tol)) {
        failures += set.filename().string() + " output " + std::to_string(o) + ": max abs error " +
                    std::to_string(worst) + " > " + std::to_string(tol) + " (max |ref| " + std::to_string(scale) +
                    ", " + plan.describe() + "); ";
      }
    }
  }
  return failures;
}

std::vector<Case> encrypted_cases() {
  std::vector<Case> out;
  for (const Case& c : all_cases()) {
    if (!plain_unsupported().count(c.name)) out.push_back(c);
  }
  return out;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> v = encrypted_cases();
  return v;
}

class EncryptedConformance : public ::testing::TestWithParam<Case> {};

TEST_P(EncryptedConformance, MatchesReference) {
  const Case& c = GetParam();
  auto it = refused().find(c.name);
  if (it != refused().end()) {
    try {
      run_case_encrypted(c);
      FAIL() << c.name << " is listed as refused (" << it->second.reason << ") but ran";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(it->second.error), std::string::npos)
          << "unexpected error message: " << e.what();
    }
    return;
  }
  std::string failures;
  try {
    failures = run_case_encrypted(c);
  } catch (const std::exception& e) {
    FAIL() << "exception: " << e.what();
  }
  EXPECT_EQ(failures, "");
}

INSTANTIATE_TEST_SUITE_P(Onnx, EncryptedConformance, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(EncryptedConformance);

// The counts for the issue, from the lists (the parametrized tests assert each case: a
// listed case must fail with its error, every other case must pass).
TEST(EncryptedConformanceSummary, Counts) {
  if (!fs::is_directory(kRoot)) GTEST_SKIP() << kRoot << " is absent (package libonnx-testdata)";
  std::map<std::string, int> by_reason;
  for (const auto& [name, r] : refused()) {
    bool listed = false;
    for (const Case& c : cases()) listed = listed || c.name == name;
    EXPECT_TRUE(listed) << name << " is listed as refused but is not a plaintext-passing case";
    ++by_reason[r.reason];
  }
  const std::size_t passed = cases().size() - refused().size();
  std::printf("ONNX conformance, encrypted: %zu of %zu plaintext-passing cases pass (relative tolerance %g); "
              "%zu refused:\n",
              passed, cases().size(), kRelTol, refused().size());
  for (const auto& [reason, n] : by_reason) std::printf("  %3d  %s\n", n, reason.c_str());
  EXPECT_GT(passed, 100u);
}

}  // namespace
}  // namespace heinfer
