// Shared harness for the ONNX backend conformance tests (libonnx-testdata): case
// discovery, TensorProto loading and the binding of test-data inputs. Used by
// tests/runtime/conformance_test.cpp (plaintext executor) and
// tests/encrypted/conformance_encrypted_test.cpp (encrypted executor).
//
// Binding rules (batch-axis packing): graph input 0 is the data, its dim 0 the batch.
// Another graph input is data too when it has the same rank and dim 0 and every reader is
// Add, Sub or Concat; otherwise it is bound as a constant (initializer) from the test data
// (weights, pads, shapes, exponents...).
#pragma once

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/error.h"
#include "model/graph.h"
#include "model/load.h"
#include "model/onnx_import.h"
#include "model/onnx_tensor.h"
#include "model/op_type.h"
#include "runtime/plain_tensor.h"

namespace heinfer::test::conformance {

namespace fs = std::filesystem;
inline const fs::path kRoot = "/usr/share/libonnx-testdata/data";

struct Case {
  std::string name;  // "<suite>__<test>", gtest-safe
  fs::path dir;
};

inline void PrintTo(const Case& c, std::ostream* os) { *os << c.dir.string(); }

inline std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

inline bool is_float(int t) { return t == onnx::TensorProto::FLOAT || t == onnx::TensorProto::DOUBLE; }

/// Graphs with only known ai.onnx operators and float data (int64 side inputs allowed).
inline bool selected(const onnx::ModelProto& m) {
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

inline std::vector<Case> discover() {
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

/// The discovered cases (computed once).
inline const std::vector<Case>& all_cases() {
  static const std::vector<Case> cases = discover();
  return cases;
}

inline onnx::TensorProto read_tensor(const fs::path& p) {
  onnx::TensorProto t;
  if (!t.ParseFromString(read_file(p))) throw std::runtime_error("cannot parse " + p.string());
  return t;
}

inline onnx::ModelProto load_model_proto(const Case& c) {
  return model::parse_onnx(read_file(c.dir / "model.onnx"), c.dir.string());
}

/// The test_data_set_* directories of a case, sorted.
inline std::vector<fs::path> test_sets(const Case& c) {
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(c.dir)) {
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) {
      sets.push_back(e.path());
    }
  }
  std::sort(sets.begin(), sets.end());
  return sets;
}

/// One test data set bound to the model: the prepared graph (non-data inputs bound as
/// initializers) and the data inputs in graph-input order.
struct BoundSet {
  model::Graph graph;
  std::vector<runtime::PlainTensor> inputs;
};

/// Applies the binding rules (file comment) to `set`. Throws model::ModelError for models
/// heinfer cannot import or prepare.
inline BoundSet bind_set(const onnx::ModelProto& m, const fs::path& set) {
  std::set<std::string> inits;
  for (const auto& i : m.graph().initializer()) inits.insert(i.name());
  std::vector<int> real_inputs;
  for (int i = 0; i < m.graph().input_size(); ++i) {
    if (!inits.count(m.graph().input(i).name())) real_inputs.push_back(i);
  }
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
  BoundSet b{model::import_onnx(mm), {}};
  model::prepare_graph(b.graph);
  for (std::size_t k : data_inputs) {
    const model::TensorValue v = model::tensor_from_proto(in[k], "input");
    if (v.dims.empty() || v.dims[0] <= 0) throw model::ModelError("test input has no batch");
    b.inputs.push_back(runtime::from_batch_major(
        std::span<const double>(v.data), v.dims[0], model::Shape(v.dims.begin() + 1, v.dims.end())));
  }
  return b;
}

/// Reference output k of a test data set.
inline model::TensorValue reference_output(const fs::path& set, std::size_t k) {
  return model::tensor_from_proto(read_tensor(set / ("output_" + std::to_string(k) + ".pb")), "output");
}

}  // namespace heinfer::test::conformance
