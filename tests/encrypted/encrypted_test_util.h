// Helpers for the encrypted-executor tests: run a graph encrypted and in plaintext.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "../common/onnx_builder.h"
#include "model/error.h"
#include "runtime/encrypted_executor.h"
#include "plan/parameters.h"
#include "runtime/calibration.h"
#include "runtime/plain_executor.h"

namespace heinfer::test {

/// A plan from calibration on x; with small_n the ring degree is replaced by `small_n`
/// (insecure, tests only) keeping the selected chain. Unmasked rounds are allowed (the
/// tests of their refusal plan without this helper).
inline plan::Parameters test_plan(const model::Graph& g, const runtime::PlainTensor& x,
                                         ckks::Packing packing, std::size_t small_n = 0,
                                         plan::RoundMasks masks = plan::RoundMasks::PerWindow) {
  plan::ParameterOptions o;
  o.packing = packing;
  o.masks = masks;
  o.unmasked_functions = true;
  plan::Parameters plan = plan::plan_parameters(g, runtime::calibrate_ranges(g, {x}), o);
  if (small_n) {
    plan.params = ckks::EncryptionParameters(small_n, plan.params.coeff_bits(), plan.params.special_bits(),
                                             ckks::SecurityLevel::None);
  }
  return plan;
}

struct Comparison {
  std::vector<double> encrypted, plain;
  double max_abs_error = 0, max_abs_plain = 0;
  runtime::EncryptedRunStats stats;
};

/// Runs g on x encrypted (one batch) and in plaintext; outputs batch-major.
inline Comparison compare(const model::Graph& g, const runtime::PlainTensor& x, ckks::Packing packing,
                          std::size_t small_n = 2048, plan::RoundMasks masks = plan::RoundMasks::PerWindow) {
  Comparison c;
  const auto plan = test_plan(g, x, packing, small_n, masks);
  runtime::EncryptedSession s(g, plan);
  const auto y = s.executor->run(*s.client, {x}, c.stats);
  c.encrypted = runtime::to_batch_major(y[0]);
  c.plain = runtime::to_batch_major(runtime::run_plain(g, {x})[0]);
  for (std::size_t i = 0; i < c.plain.size(); ++i) {
    c.max_abs_error = std::max(c.max_abs_error, std::fabs(c.encrypted[i] - c.plain[i]));
    c.max_abs_plain = std::max(c.max_abs_plain, std::fabs(c.plain[i]));
  }
  return c;
}

inline runtime::PlainTensor random_input(const model::Shape& shape, std::int64_t batch, std::uint32_t seed,
                                         float lo = -1, float hi = 1) {
  const auto v = random_floats(static_cast<std::size_t>(batch * model::numel(shape)), seed, lo, hi);
  return runtime::from_batch_major(std::span<const float>(v), batch, shape);
}

/// Conv 3x3 (pads 1) -> Relu -> MaxPool 2x2 (the Relu fused into it) -> Conv 1x1 ->
/// MaxPool 2x2 with pads 1 on 3x3 (windows of 4, 2 and 1 taps), on [2, 6, 6]; output "p2"
/// when `tail` (the caller adds nodes after it), else "y".
inline model::Graph max_pool_net(ModelBuilder* tail = nullptr) {
  ModelBuilder own;
  ModelBuilder& b = tail ? *tail : own;
  b.input("x", {2, 6, 6});
  b.initializer("w", {2, 2, 3, 3}, random_floats(36, 41));
  attr(b.node("Conv", {"x", "w"}, {"c"}), "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  b.node("Relu", {"c"}, {"r"});
  auto& p = b.node("MaxPool", {"r"}, {"p"});
  attr(p, "kernel_shape", std::vector<std::int64_t>{2, 2});
  attr(p, "strides", std::vector<std::int64_t>{2, 2});
  b.initializer("w2", {2, 2, 1, 1}, random_floats(4, 42));
  b.node("Conv", {"p", "w2"}, {"c2"});
  auto& p2 = b.node("MaxPool", {"c2"}, {tail ? "p2" : "y"});
  attr(p2, "kernel_shape", std::vector<std::int64_t>{2, 2});
  attr(p2, "pads", std::vector<std::int64_t>{1, 1, 1, 1});
  attr(p2, "strides", std::vector<std::int64_t>{2, 2});
  if (tail) return {};
  b.output("y");
  return b.load();
}

}  // namespace heinfer::test
