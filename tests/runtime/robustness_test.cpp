// Corrupted models: random byte mutations of a valid model must either load (and then
// run) or fail with model::ModelError - never crash or throw anything else.
// HEINFER_FUZZ_TRIALS sets the number of mutations (default 1500).
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "../common/onnx_builder.h"
#include "model/error.h"
#include "model/liveness.h"
#include "model/load.h"
#include "model/onnx_import.h"
#include "runtime/plain_executor.h"

namespace heinfer {
namespace {

using test::attr;
using test::ModelBuilder;

std::string sample_model() {
  ModelBuilder b(13);
  b.input("x", {2, 6, 6}).output("y");
  b.initializer("w", {4, 2, 3, 3}, std::vector<float>(72, 0.1f));
  b.initializer("s", {4}, {1, 2, 3, 4});
  b.initializer("bb", {4}, {0, 1, 0, 1});
  b.initializer("m", {4}, {0, 0, 1, 1});
  b.initializer("v", {4}, {1, 1, 2, 2});
  b.initializer_i64("shape", {2}, {0, -1});
  b.initializer_i64("pads", {8}, {0, 0, 1, 1, 0, 0, 1, 1});
  b.initializer("fc", {3, 32}, std::vector<float>(96, 0.05f));
  attr(b.node("Conv", {"x", "w"}, {"c"}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("BatchNormalization", {"c", "s", "bb", "m", "v"}, {"n"});
  b.node("Relu", {"n"}, {"r"});
  b.node("Pad", {"r", "pads"}, {"p"});
  auto& mp = b.node("MaxPool", {"p"}, {"q"});
  attr(mp, "kernel_shape", std::vector<std::int64_t>{3, 3});
  attr(mp, "strides", std::vector<std::int64_t>{3, 3});
  attr(b.node("Concat", {"q", "q"}, {"cat"}), "axis", std::int64_t{1});
  b.node("Reshape", {"cat", "shape"}, {"flat"});
  attr(b.node("Gemm", {"flat", "fc"}, {"g"}), "transB", std::int64_t{1});
  b.node("Softmax", {"g"}, {"y"});
  return b.bytes();
}

TEST(Robustness, MutatedModelsLoadOrFailWithModelError) {
  const std::string good = sample_model();
  model::Graph reference = model::import_onnx(model::parse_onnx(good, "good"));
  ASSERT_NO_THROW(model::prepare_graph(reference));
  std::mt19937 rng(12345);
  int loaded = 0, rejected = 0;
  const char* env = std::getenv("HEINFER_FUZZ_TRIALS");  // e.g. 200000 for a longer run
  const int trials = env ? std::atoi(env) : 1500;
  for (int trial = 0; trial < trials; ++trial) {
    std::string bytes = good;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      bytes[rng() % bytes.size()] = static_cast<char>(rng() & 0xff);
    }
    if (rng() % 8 == 0) bytes.resize(rng() % bytes.size());
    try {
      model::Graph g = model::import_onnx(model::parse_onnx(bytes, "mutated"));
      model::prepare_graph(g);
      ++loaded;
      if (model::peak_live_elements(g) > 100000) continue;  // a valid but huge model
      std::vector<runtime::PlainTensor> in;
      for (model::TensorId t : g.inputs) {
        in.push_back(runtime::make_plain_tensor(g.tensors[static_cast<std::size_t>(t)].shape, 2));
      }
      runtime::run_plain(g, std::move(in));
    } catch (const model::ModelError&) {
      ++rejected;
    }
  }
  std::printf("mutated models: %d loaded, %d rejected with ModelError\n", loaded, rejected);
  EXPECT_GT(rejected, 0);
  EXPECT_GT(loaded, 0);
}

}  // namespace
}  // namespace heinfer
