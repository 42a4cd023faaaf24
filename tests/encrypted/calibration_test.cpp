// Range calibration in parts of a batch: the same per-tensor maxima as one plaintext run
// of the whole batch, at a bounded activation size.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "encrypted_test_util.h"
#include "model/error.h"
#include "model/load.h"
#include "model/shape.h"

namespace heinfer {
namespace {

const std::filesystem::path kModels = std::filesystem::path(HEINFER_SOURCE_DIR) / "models";

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

TEST(Calibration, PartsOfTheBatchGiveTheRangesOfOneRun) {
  const model::Graph g = model::load_model(kModels / "fmnist_cnn.onnx");
  // Samples of very different magnitudes, so that each part has its own maxima.
  runtime::PlainTensor x = test::random_input({1, 28, 28}, 37, 5, -1, 1);
  for (std::int64_t e = 0; e < x.elements(); ++e) {
    auto v = x.element(e);
    for (std::size_t b = 0; b < v.size(); ++b) v[b] *= 1.0 + static_cast<double>(b % 7);
  }
  const auto whole = runtime::calibrate_ranges(g, {x}, 1000);
  for (std::int64_t part : {1, 5, 36}) {
    const auto parts = runtime::calibrate_ranges(g, {x}, part);
    ASSERT_EQ(parts.size(), whole.size());
    // Equal up to float64 rounding: the convolutions of parts of >= 8 samples are matrix
    // products (runtime/plain_conv.h), whose summation order differs from the kernel's.
    for (std::size_t t = 0; t < whole.size(); ++t) {
      EXPECT_NEAR(parts[t], whole[t], 1e-12 * whole[t]) << "tensor " << t << ", parts of " << part;
    }
  }
  // Against the plaintext executor: the input and the output ranges.
  EXPECT_EQ(whole[static_cast<std::size_t>(g.inputs[0])], max_abs(x.data));
  const auto y = runtime::run_plain(g, {x})[0];
  EXPECT_DOUBLE_EQ(whole[static_cast<std::size_t>(g.outputs[0])], max_abs(y.data));
  EXPECT_GT(whole[static_cast<std::size_t>(g.outputs[0])], 0.0);
  // The calibration run's outputs are the plaintext executor's (heinfer run --check).
  for (std::int64_t part : {5, 1000}) {
    std::vector<std::vector<double>> outputs;
    runtime::calibrate_ranges(g, {x}, part, &outputs);
    ASSERT_EQ(outputs.size(), 1u);
    const auto want = runtime::to_batch_major(y);
    ASSERT_EQ(outputs[0].size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(outputs[0][i], want[i], 1e-12 * (1 + std::fabs(want[i])));
  }
}

TEST(Calibration, BatchMajorInputGivesTheSameRangesAndOutputs) {
  const model::Graph g = model::load_model(kModels / "fmnist_cnn.onnx");
  // More samples than a part holds, so that the batch-major path converts several parts.
  const std::int64_t count = runtime::calibration_samples(g) * 2 + 3;
  const runtime::PlainTensor x = test::random_input({1, 28, 28}, count, 11, -1, 1);
  std::vector<std::vector<double>> want_out, got_out;
  const auto want = runtime::calibrate_ranges(g, {x}, 0, &want_out);
  const std::vector<double> bm = runtime::to_batch_major(x);
  const auto got = runtime::calibrate_ranges_batch_major(g, bm, count, &got_out);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t t = 0; t < want.size(); ++t) EXPECT_EQ(got[t], want[t]) << "tensor " << t;
  ASSERT_EQ(got_out.size(), 1u);
  EXPECT_EQ(got_out[0], want_out[0]);
  // A size that is not count samples is refused.
  EXPECT_THROW(runtime::calibrate_ranges_batch_major(g, std::span<const double>(bm).first(bm.size() - 1), count),
               model::ModelError);
}

TEST(Calibration, PartsHoldAtMostTheActivationBudget) {
  const model::Graph g = model::load_model(kModels / "fmnist_cnn.onnx");
  std::int64_t largest = 0;
  for (const auto& t : g.tensors) {
    if (!t.is_constant) largest = std::max(largest, model::numel(t.shape));
  }
  const std::int64_t samples = runtime::calibration_samples(g);
  EXPECT_LE(samples * largest * 8, runtime::kCalibrationTensorBytes);
  EXPECT_GT((samples + 1) * largest * 8, runtime::kCalibrationTensorBytes);
}

}  // namespace
}  // namespace heinfer
