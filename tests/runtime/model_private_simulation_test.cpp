// The model-private mode's approximations simulated in double
// (runtime/model_private_simulation.h) on the committed Fashion-MNIST CNN.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model/load.h"
#include "runtime/calibration.h"
#include "runtime/metrics.h"
#include "runtime/model_private_simulation.h"
#include "runtime/npy.h"

namespace heinfer::runtime {
namespace {

namespace fs = std::filesystem;
const fs::path kModels = fs::path(HEINFER_SOURCE_DIR) / "models";

struct Cnn {
  model::Graph g = model::load_model(kModels / "fmnist_cnn.onnx");
  model::Shape shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  InputBatch x = read_input_batch(kModels / "fmnist_test64_images.npy", shape);
  PlainTensor input() const { return from_batch_major(std::span<const double>(x.values), x.count, shape); }
  std::vector<double> ranges = calibrate_ranges(g, {input()});
};

TEST(ModelPrivateSimulation, ApproximationsFollowTheRangesAndTheTarget) {
  const Cnn c;
  const auto approx = plan::model_private_approximations(c.g, c.ranges, {0x1p-7, 1.5});
  ASSERT_EQ(approx.size(), 3u);  // relu1 (deferred to pool1), pool1, relu2
  for (const auto& [k, a] : approx) {
    const model::Node& n = c.g.nodes[k];
    if (n.name == "/relu1/Relu") {
      EXPECT_TRUE(a.deferred && !a.relu && !a.max);
    } else if (n.name == "/pool1/MaxPool") {
      // The pool sees relu1's input (both signs): its differences within twice that range.
      const double range = c.ranges[static_cast<std::size_t>(c.g.nodes[k - 1].inputs[0])];
      ASSERT_TRUE(a.max && a.relu);
      EXPECT_DOUBLE_EQ(a.max->bound, 1.5 * range * 2);
      EXPECT_DOUBLE_EQ(a.relu->bound, 1.5 * range);
      EXPECT_LE(a.max->max_abs_error, 0x1p-7 * a.max->bound * (1 + 1e-12));
    } else {
      ASSERT_EQ(n.name, "/relu2/Relu");
      ASSERT_TRUE(a.relu && !a.max && !a.deferred);
      EXPECT_DOUBLE_EQ(a.relu->bound, 1.5 * c.ranges[static_cast<std::size_t>(n.inputs[0])]);
    }
  }
}

TEST(ModelPrivateSimulation, CnnKeepsItsPredictionsAndLeavingTheBoundIsAnError) {
  const Cnn c;
  const std::vector<double> exact = to_batch_major(run_plain(c.g, {c.input()})[0]);
  // No replacement: bit for bit the plaintext executor.
  EXPECT_EQ(to_batch_major(run_plain_approximated(c.g, {c.input()}, {})[0]), exact);
  const auto approx = plan::model_private_approximations(c.g, c.ranges, {0x1p-7, 1.5});
  const std::vector<double> y = to_batch_major(run_plain_approximated(c.g, {c.input()}, approx)[0]);
  const std::vector<float> ef(exact.begin(), exact.end()), yf(y.begin(), y.end());
  const auto a = argmax_rows(ef, 64, 10), b = argmax_rows(yf, 64, 10);
  int agree = 0;
  double err = 0, largest = 0;
  for (int i = 0; i < 64; ++i) agree += a[i] == b[i];
  for (std::size_t i = 0; i < y.size(); ++i) {
    err = std::max(err, std::fabs(y[i] - exact[i]));
    largest = std::max(largest, std::fabs(exact[i]));
  }
  EXPECT_GE(agree, 63);
  EXPECT_LT(err, 0.05 * largest);
  EXPECT_GT(err, 0.0);  // the approximation is in place
  // Bounds below the calibrated range (margin 0.5): the first Relu's inputs leave them.
  const auto tight = plan::model_private_approximations(c.g, c.ranges, {0x1p-7, 0.5});
  try {
    run_plain_approximated(c.g, {c.input()}, tight);
    ADD_FAILURE() << "a value beyond the bound was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("leaves the approximation's bound"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace heinfer::runtime
