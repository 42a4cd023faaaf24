// The committed Fashion-MNIST models on the committed 64-image slice, against the
// reference logits and accuracy written by tools/train_fashion_mnist.py (PyTorch, float64).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "model/load.h"
#include "runtime/batch_runner.h"
#include "runtime/metrics.h"
#include "runtime/npy.h"

namespace heinfer {
namespace {

namespace fs = std::filesystem;
const fs::path kModels = fs::path(HEINFER_SOURCE_DIR) / "models";

class FashionMnist : public ::testing::TestWithParam<std::string> {};

TEST_P(FashionMnist, SliceMatchesPyTorchReference) {
  const std::string arch = GetParam();
  const fs::path onnx = kModels / ("fmnist_" + arch + ".onnx");
  const fs::path logits = kModels / ("fmnist_" + arch + "_test64_logits.npy");
  if (!fs::exists(onnx) || !fs::exists(logits)) GTEST_SKIP() << onnx << " not present";

  const model::Graph g = model::load_model(onnx);
  const runtime::NpyArray x = runtime::read_npy(kModels / "fmnist_test64_images.npy");
  ASSERT_EQ(x.shape, (std::vector<std::int64_t>{64, 1, 28, 28}));
  const std::vector<float> y = runtime::run_plain_batched(g, x.to_double(), 64, 16);

  const runtime::NpyArray ref = runtime::read_npy(logits);
  ASSERT_EQ(ref.shape, (std::vector<std::int64_t>{64, 10}));
  const std::vector<double> r = ref.to_double();
  ASSERT_EQ(y.size(), r.size());
  double worst = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    worst = std::max(worst, std::abs(y[i] - r[i]) / (1.0 + std::abs(r[i])));
  }
  EXPECT_LT(worst, 1e-5) << "max relative logit difference vs PyTorch float64";

  const auto labels = runtime::read_npy(kModels / "fmnist_test64_labels.npy").to_int64();
  const auto pred = runtime::argmax_rows(y, 64, 10);
  const std::int64_t correct = runtime::count_correct(pred, labels);
  std::ifstream f(kModels / "accuracy.json");
  const nlohmann::json acc = nlohmann::json::parse(f);
  const auto& entry = acc.at("fmnist_" + arch + ".onnx");
  EXPECT_EQ(correct, entry.at("reference_logits").at("argmax_correct").get<std::int64_t>());
  std::printf("fmnist_%s: 64-image slice top-1 %lld/64, max rel. logit diff %.2e\n", arch.c_str(),
              static_cast<long long>(correct), worst);
}

INSTANTIATE_TEST_SUITE_P(Models, FashionMnist, ::testing::Values("cryptonets", "cnn"));

}  // namespace
}  // namespace heinfer
