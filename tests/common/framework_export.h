// Models as frameworks export them: a model exported by one of the tools (torchvision
// classifiers by tools/export_torchvision.py, small idioms by tools/export_idioms.py) with
// seeded weights, seeded inputs and PyTorch's float64 outputs; loaded by heinfer and run by
// the plaintext executor, which must match PyTorch within 1e-5 relative (of the largest
// |output|). Encrypted cases then run `heinfer run` (client-aided, ring degree 64 for the
// tests, unmasked rounds allowed for Sigmoid & co.) on the same inputs: top-1 must equal PyTorch's on every image and the outputs
// agree within 1e-2 relative. Skipped without /usr/bin/python3 + torch + torchvision + onnx.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "model/load.h"
#include "runtime/npy.h"
#include "runtime/plain_executor.h"

namespace heinfer::test {

struct ExportCase {
  std::string tool;  ///< "export_torchvision.py" or "export_idioms.py"
  std::string args;  ///< model arguments, e.g. "--arch resnet18 --resolution 32"
  int opset = 13;
  std::string name;  ///< gtest-safe
  bool encrypted = false;
};

inline void PrintTo(const ExportCase& c, std::ostream* os) { *os << c.tool << " " << c.args << " opset " << c.opset; }

/// Exports, loads, runs in plaintext and compares with PyTorch (file comment).
inline void expect_export_matches_pytorch(const ExportCase& c) {
  namespace fs = std::filesystem;
  const fs::path tool = fs::path(HEINFER_SOURCE_DIR) / "tools" / c.tool;
  if (std::system("/usr/bin/python3 -c 'import torch, torchvision, onnx' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "needs /usr/bin/python3 with torch, torchvision and onnx";
  }
  const fs::path dir = fs::temp_directory_path() / ("heinfer_export_" + c.name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path onnx = dir / "m.onnx", x = dir / "x.npy", y = dir / "y.npy";
  const std::string cmd = "/usr/bin/python3 '" + tool.string() + "' " + c.args + " --opset " + std::to_string(c.opset) +
                          " --out '" + onnx.string() + "' --input-npy '" + x.string() + "' --count " + (c.encrypted ? "8" : "2") + " --logits-npy '" +
                          y.string() + "'" + (c.tool == "export_torchvision.py" ? " --logits-dtype float64 --threads 1" : "") +
                          " > '" + (dir / "export.log").string() + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const model::Graph g = model::load_model(onnx);
  ASSERT_EQ(g.inputs.size(), 1u);
  const auto& in_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  const runtime::InputBatch batch = runtime::read_input_batch(x, in_shape);
  const auto out = runtime::run_plain(g, {runtime::from_batch_major(std::span<const double>(batch.values), batch.count, in_shape)});
  const std::vector<double> got = runtime::to_batch_major(out.at(0));
  const std::vector<double> ref = runtime::read_npy(y).to_double();
  ASSERT_EQ(got.size(), ref.size());
  double scale = 0, worst = 0;
  for (double v : ref) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(got[i] - ref[i]));
  EXPECT_LE(worst, 1e-5 * scale) << c.name << ": max |heinfer - PyTorch| " << worst << " of max |output| " << scale;
  if (c.encrypted) {
    const fs::path exe = fs::path(HEINFER_BINARY_DIR) / "heinfer", enc = dir / "enc.npy";
    const std::string run = exe.string() + " run '" + onnx.string() + "' --input '" + x.string() + "' --output '" +
                            enc.string() + "' --insecure-ring-degree 64 --allow-unmasked-rounds --threads 2 --quiet > '" +
                            (dir / "run.log").string() + "' 2>&1";
    ASSERT_EQ(std::system(run.c_str()), 0) << run;
    const std::vector<double> e = runtime::read_npy(enc).to_double();
    ASSERT_EQ(e.size(), ref.size());
    const std::size_t classes = ref.size() / static_cast<std::size_t>(batch.count);
    double err = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) err = std::max(err, std::abs(e[i] - ref[i]));
    EXPECT_LE(err, 1e-2 * scale) << c.name << ": encrypted max error " << err << " of max |output| " << scale;
    for (std::size_t b = 0; b < static_cast<std::size_t>(batch.count); ++b) {
      const auto top = [&](const std::vector<double>& v) {
        return std::max_element(v.begin() + static_cast<std::ptrdiff_t>(b * classes),
                                v.begin() + static_cast<std::ptrdiff_t>((b + 1) * classes)) - v.begin();
      };
      EXPECT_EQ(top(e), top(ref)) << c.name << ": top-1 of image " << b;
    }
  }
  fs::remove_all(dir);
}

}  // namespace heinfer::test
