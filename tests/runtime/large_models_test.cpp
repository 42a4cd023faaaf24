// MobileNetV2 and ResNet-50 (torchvision architectures, seeded random weights, BN kept in
// the export) at 32x32, exported at test time by tools/export_torchvision.py, against
// PyTorch float64 logits. Skipped when /usr/bin/python3 with torch/torchvision/onnx or the
// tool is unavailable.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "model/load.h"
#include "runtime/batch_runner.h"
#include "runtime/npy.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;
const fs::path kTool = fs::path(HEINFER_SOURCE_DIR) / "tools" / "export_torchvision.py";

struct Arch {
  std::string name, width;
};

void PrintTo(const Arch& a, std::ostream* os) { *os << a.name << " width " << a.width; }

class LargeModels : public ::testing::TestWithParam<Arch> {};

TEST_P(LargeModels, MatchPyTorchAt32x32) {
  if (!fs::exists("/usr/bin/python3") || !fs::exists(kTool) ||
      std::system("/usr/bin/python3 -c 'import torch, torchvision, onnx' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "needs /usr/bin/python3 with torch, torchvision, onnx and " << kTool;
  }
  const Arch& a = GetParam();
  const fs::path dir = fs::temp_directory_path() / ("heinfer_large_" + a.name + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path onnx = dir / "m.onnx", x = dir / "x.npy", y = dir / "y.npy";
  const std::string cmd = "/usr/bin/python3 '" + kTool.string() + "' --arch " + a.name + " --width " +
                          a.width + " --resolution 32 --threads 1 --out '" + onnx.string() +
                          "' --input-npy '" + x.string() + "' --count 2 --logits-npy '" +
                          y.string() + "' --logits-dtype float64 > '" + (dir / "log").string() + "' 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  const model::Graph g = model::load_model(onnx);
  for (const auto& n : g.nodes) EXPECT_NE(n.op, model::OpType::BatchNormalization) << n.name;
  const std::vector<float> out = runtime::run_plain_batched(g, runtime::read_npy(x).to_double(), 2, 2);
  const std::vector<double> ref = runtime::read_npy(y).to_double();
  ASSERT_EQ(out.size(), ref.size());
  double worst = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    worst = std::max(worst, std::abs(out[i] - ref[i]) / (1e-3 + std::abs(ref[i])));
  }
  EXPECT_LT(worst, 1e-4) << "max relative logit difference";
  std::printf("%s %s at 32x32: %zu nodes after passes, max rel. logit diff %.2e\n", a.name.c_str(),
              a.width.c_str(), g.nodes.size(), worst);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Torchvision, LargeModels,
                         ::testing::Values(Arch{"mobilenet_v2", "0.35"}, Arch{"resnet50", "1.0"}),
                         [](const ::testing::TestParamInfo<Arch>& i) { return i.param.name; });

}  // namespace
}  // namespace heinfer
