// ONNX backend conformance: runs the node / pytorch-converted / pytorch-operator test
// cases of libonnx-testdata whose graphs use only supported operators and float tensors.
//
// Discovery and input binding: tests/common/onnx_conformance.h.
// Harness rules (batch-axis packing): graph input 0 is the data, its dim 0 the batch.
// Another graph input is data too when it has the same rank and dim 0 and every reader is
// Add, Sub or Concat; otherwise it is bound as a constant (initializer) from the test data
// (weights, pads, shapes, exponents...). Outputs must match within |d| <= 1e-5 + 1e-4|ref|.
// Cases that need something heinfer does not support are listed in kUnsupported with a
// substring of the expected ModelError message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "../common/onnx_conformance.h"
#include "model/error.h"
#include "runtime/plain_executor.h"

namespace heinfer {
namespace {

using test::conformance::all_cases;
using test::conformance::Case;
using test::conformance::kRoot;
namespace fs = std::filesystem;

/// Expected failures: case name -> substring of the ModelError message.
const std::map<std::string, std::string>& unsupported() {
  static const std::map<std::string, std::string> m = {
#include "conformance_unsupported.inc"
  };
  return m;
}

/// Runs one case; returns "" on success or a description of the mismatch. Throws
/// model::ModelError for unsupported models.
std::string run_case(const Case& c) {
  const onnx::ModelProto m = test::conformance::load_model_proto(c);
  const std::vector<fs::path> sets = test::conformance::test_sets(c);
  if (sets.empty()) return "no test_data_set";
  std::string failures;
  for (const fs::path& set : sets) {
    test::conformance::BoundSet b = test::conformance::bind_set(m, set);
    const auto outputs = runtime::run_plain(b.graph, std::move(b.inputs));
    for (std::size_t k = 0; k < outputs.size(); ++k) {
      const model::TensorValue ref = test::conformance::reference_output(set, k);
      model::Shape got{outputs[k].batch};
      got.insert(got.end(), outputs[k].shape.begin(), outputs[k].shape.end());
      if (got != ref.dims) {
        failures += "output " + std::to_string(k) + " shape " + model::to_string(got) +
                    " != reference " + model::to_string(ref.dims) + "; ";
        continue;
      }
      const std::vector<double> y = runtime::to_batch_major(outputs[k]);
      std::size_t bad = 0;
      double worst = 0;
      for (std::size_t i = 0; i < y.size(); ++i) {
        const double d = std::abs(y[i] - ref.data[i]);
        const bool ok = d <= 1e-5 + 1e-4 * std::abs(ref.data[i]) ||
                        (std::isinf(ref.data[i]) && y[i] == ref.data[i]) ||
                        (std::isnan(ref.data[i]) && std::isnan(y[i]));
        if (!ok) {
          ++bad;
          worst = std::max(worst, d);
        }
      }
      if (bad) {
        failures += "output " + std::to_string(k) + ": " + std::to_string(bad) +
                    " elements differ, max abs error " + std::to_string(worst) + "; ";
      }
    }
  }
  return failures;
}

class Conformance : public ::testing::TestWithParam<Case> {};

TEST_P(Conformance, MatchesReference) {
  const Case& c = GetParam();
  auto it = unsupported().find(c.name);
  if (it != unsupported().end()) {
    try {
      run_case(c);
      FAIL() << c.name << " is listed as unsupported but ran";
    } catch (const model::ModelError& e) {
      EXPECT_NE(std::string(e.what()).find(it->second), std::string::npos)
          << "unexpected error message: " << e.what();
    }
    return;
  }
  std::string failures;
  try {
    failures = run_case(c);
  } catch (const model::ModelError& e) {
    FAIL() << "ModelError: " << e.what();
  }
  EXPECT_EQ(failures, "");
}

INSTANTIATE_TEST_SUITE_P(Onnx, Conformance, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Conformance);

// Runs every case once more in-process and prints the totals (the number for the issue).
TEST(ConformanceSummary, CountsPassingCases) {
  if (!fs::is_directory(kRoot)) GTEST_SKIP() << kRoot << " is absent (package libonnx-testdata)";
  int passed = 0, rejected = 0, failed = 0;
  for (const Case& c : all_cases()) {
    try {
      if (run_case(c).empty() && !unsupported().count(c.name)) ++passed;
      else ++failed;
    } catch (const model::ModelError&) {
      if (unsupported().count(c.name)) ++rejected;
      else ++failed;
    }
  }
  std::printf("ONNX conformance: %d passed / %zu discovered (%d asserted unsupported, %d failed)\n",
              passed, all_cases().size(), rejected, failed);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(static_cast<std::size_t>(passed + rejected), all_cases().size());
  EXPECT_GT(passed, 100);
}

}  // namespace
}  // namespace heinfer
