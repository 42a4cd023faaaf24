// ONNX backend conformance: runs the node / pytorch-converted / pytorch-operator test
// cases of libonnx-testdata whose graphs use only supported operators and float tensors.
//
// Harness rules (batch-axis packing): graph input 0 is the data, its dim 0 the batch.
// Another graph input is data too when it has the same rank and dim 0 and every reader is
// Add, Sub or Concat; otherwise it is bound as a constant (initializer) from the test data
// (weights, pads, shapes, exponents...). Outputs must match within |d| <= 1e-5 + 1e-4|ref|.
// Cases that need something heinfer does not support are listed in kUnsupported with a
// substring of the expected ModelError message.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "model/error.h"
#include "model/load.h"
#include "model/onnx_import.h"
#include "model/onnx_tensor.h"
#include "model/op_type.h"
#include "runtime/plain_executor.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;
const fs::path kRoot = "/usr/share/libonnx-testdata/data";

struct Case {
  std::string name;  // "<suite>__<test>", gtest-safe
  fs::path dir;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.dir.string(); }

/// Expected failures: case name -> substring of the ModelError message.
const std::map<std::string, std::string>& unsupported() {
  static const std::map<std::string, std::string> m = {
#include "conformance_unsupported.inc"
  };
  return m;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

bool is_float(int t) { return t == onnx::TensorProto::FLOAT || t == onnx::TensorProto::DOUBLE; }

bool selected(const onnx::ModelProto& m) {
  for (const auto& n : m.graph().node()) {
    if (!n.domain().empty() && n.domain() != "ai.onnx") return false;
    if (!model::parse_op_type(n.op_type())) return false;
  }
  std::set<std::string> inits;
  for (const auto& i : m.graph().initializer()) inits.insert(i.name());
  for (const auto& vi : m.graph().input()) {
    if (inits.count(vi.name())) continue;
    const int t = vi.type().tensor_type().elem_type();
    if (!vi.type().has_tensor_type() || !(is_float(t) || t == onnx::TensorProto::INT64)) return false;
  }
  if (m.graph().input_size() == 0 || m.graph().output_size() == 0) return !m.graph().node().empty();
  if (!is_float(m.graph().input(0).type().tensor_type().elem_type())) return false;
  for (const auto& vi : m.graph().output()) {
    if (!vi.type().has_tensor_type() || !is_float(vi.type().tensor_type().elem_type())) return false;
  }
  return true;
}

std::vector<Case> discover() {
  std::vector<Case> cases;
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator"}) {
    const fs::path dir = kRoot / suite;
    if (!fs::is_directory(dir)) continue;
    std::vector<fs::path> tests;
    for (const auto& e : fs::directory_iterator(dir)) tests.push_back(e.path());
    std::sort(tests.begin(), tests.end());
    for (const fs::path& t : tests) {
      onnx::ModelProto m;
      try {
        m = model::parse_onnx(read_file(t / "model.onnx"), t.string());
      } catch (const model::ModelError&) {
        continue;
      }
      if (!selected(m)) continue;
      std::string name = std::string(suite) + "__" + t.filename().string();
      std::replace(name.begin(), name.end(), '-', '_');
      cases.push_back({name, t});
    }
  }
  return cases;
}

const std::vector<Case>& all_cases() {
  static const std::vector<Case> cases = discover();
  return cases;
}

onnx::TensorProto read_tensor(const fs::path& p) {
  onnx::TensorProto t;
  if (!t.ParseFromString(read_file(p))) throw std::runtime_error("cannot parse " + p.string());
  return t;
}

/// Runs one case; returns "" on success or a description of the mismatch. Throws
/// model::ModelError for unsupported models.
std::string run_case(const Case& c) {
  onnx::ModelProto m = model::parse_onnx(read_file(c.dir / "model.onnx"), c.dir.string());
  std::set<std::string> inits;
  for (const auto& i : m.graph().initializer()) inits.insert(i.name());
  std::vector<int> real_inputs;
  for (int i = 0; i < m.graph().input_size(); ++i) {
    if (!inits.count(m.graph().input(i).name())) real_inputs.push_back(i);
  }
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(c.dir)) {
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) {
      sets.push_back(e.path());
    }
  }
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) return "no test_data_set";
  std::string failures;
  for (const fs::path& set : sets) {
    std::vector<onnx::TensorProto> in;
    for (std::size_t k = 0; k < real_inputs.size(); ++k) {
      in.push_back(read_tensor(set / ("input_" + std::to_string(k) + ".pb")));
    }
    // Decide which inputs are data and bind the others as initializers.
    onnx::ModelProto mm = m;
    auto* graph = mm.mutable_graph();
    std::vector<std::size_t> data_inputs;
    for (std::size_t k = 0; k < real_inputs.size(); ++k) {
      const std::string& name = m.graph().input(real_inputs[k]).name();
      bool data = k == 0;
      if (k > 0 && in[k].dims_size() == in[0].dims_size() && in[k].dims_size() > 0 &&
          in[k].dims(0) == in[0].dims(0)) {
        data = true;
        for (const auto& n : m.graph().node()) {
          const bool reads = std::find(n.input().begin(), n.input().end(), name) != n.input().end();
          if (reads && n.op_type() != "Add" && n.op_type() != "Sub" && n.op_type() != "Concat") data = false;
        }
      }
      if (data) {
        data_inputs.push_back(k);
      } else {
        onnx::TensorProto init = in[k];
        init.set_name(name);
        *graph->add_initializer() = init;
      }
    }
    model::Graph g = model::import_onnx(mm);
    model::prepare_graph(g);
    std::vector<runtime::PlainTensor> inputs;
    for (std::size_t k : data_inputs) {
      const model::TensorValue v = model::tensor_from_proto(in[k], "input");
      if (v.dims.empty() || v.dims[0] <= 0) throw model::ModelError("test input has no batch");
      inputs.push_back(runtime::from_batch_major(
          std::span<const double>(v.data), v.dims[0], model::Shape(v.dims.begin() + 1, v.dims.end())));
    }
    const auto outputs = runtime::run_plain(g, std::move(inputs));
    for (std::size_t k = 0; k < outputs.size(); ++k) {
      const model::TensorValue ref =
          model::tensor_from_proto(read_tensor(set / ("output_" + std::to_string(k) + ".pb")), "output");
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
                        (std::isinf(ref.data[i]) && y[i] == ref.data[i]);
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
