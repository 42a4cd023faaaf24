// Linear and client-aided kernels through the executor, against independent naive
// references (plain NCHW loops) and values computed with PyTorch.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../common/onnx_builder.h"
#include "runtime/plain_conv.h"
#include "runtime/plain_executor.h"

namespace heinfer {
namespace {

using test::attr;
using test::ModelBuilder;
using Ints = std::vector<std::int64_t>;

using test::random_floats;

/// Runs a single-input graph on batch-major `x` ([batch, in_shape...]); batch-major output.
std::vector<double> run(const model::Graph& g, const std::vector<float>& x, std::int64_t batch,
                        model::Shape* out_shape = nullptr) {
  const model::Shape& in = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
  std::vector<runtime::PlainTensor> inputs;
  inputs.push_back(runtime::from_batch_major(std::span<const float>(x), batch, in));
  const auto y = runtime::run_plain(g, std::move(inputs));
  if (out_shape) *out_shape = y[0].shape;
  return runtime::to_batch_major(y[0]);
}

struct ConvCase {
  std::int64_t c, h, w, m, kh, kw, group, sh, sw, dh, dw, pt, pl, pb, pr;
  bool bias;
};

/// Naive ONNX Conv on NCHW batch-major data.
std::vector<double> naive_conv(const ConvCase& p, const std::vector<float>& x, std::int64_t n,
                               const std::vector<float>& w, const std::vector<float>& b,
                               std::int64_t oh, std::int64_t ow) {
  std::vector<double> y(static_cast<std::size_t>(n * p.m * oh * ow), 0.0);
  const std::int64_t cg = p.c / p.group, mg = p.m / p.group;
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t m = 0; m < p.m; ++m)
      for (std::int64_t i = 0; i < oh; ++i)
        for (std::int64_t j = 0; j < ow; ++j) {
          double acc = p.bias ? b[static_cast<std::size_t>(m)] : 0.0;
          for (std::int64_t c = 0; c < cg; ++c)
            for (std::int64_t ki = 0; ki < p.kh; ++ki)
              for (std::int64_t kj = 0; kj < p.kw; ++kj) {
                const std::int64_t hi = i * p.sh - p.pt + ki * p.dh, wi = j * p.sw - p.pl + kj * p.dw;
                if (hi < 0 || hi >= p.h || wi < 0 || wi >= p.w) continue;
                const std::int64_t ci = (m / mg) * cg + c;
                acc += static_cast<double>(w[static_cast<std::size_t>(((m * cg + c) * p.kh + ki) * p.kw + kj)]) *
                       x[static_cast<std::size_t>(((s * p.c + ci) * p.h + hi) * p.w + wi)];
              }
          y[static_cast<std::size_t>(((s * p.m + m) * oh + i) * ow + j)] = acc;
        }
  return y;
}

TEST(Kernels, ConvMatchesNaiveReference) {
  const ConvCase cases[] = {
      {3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 0, 0, 0, 0, true},    // plain
      {4, 9, 8, 6, 3, 2, 2, 2, 1, 1, 2, 1, 0, 2, 1, true},    // groups, stride, dilation, asym pads
      {5, 8, 8, 5, 3, 3, 5, 2, 2, 1, 1, 1, 1, 1, 1, false},   // depthwise
      {4, 8, 7, 8, 3, 3, 4, 1, 2, 2, 1, 2, 1, 0, 2, true},    // depthwise with multiplier 2
      {2, 5, 5, 3, 1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, false},   // 1x1 strided
      {6, 5, 4, 8, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, true},    // 1x1: the matrix product reads X itself
      {4, 6, 6, 8, 3, 3, 2, 2, 1, 1, 2, 1, 0, 2, 1, false},   // 4 outputs per group, strided, dilated
  };
  std::uint32_t seed = 1;
  for (const ConvCase& p : cases) {
    const std::int64_t oh = (p.h + p.pt + p.pb - p.dh * (p.kh - 1) - 1) / p.sh + 1;
    const std::int64_t ow = (p.w + p.pl + p.pr - p.dw * (p.kw - 1) - 1) / p.sw + 1;
    std::vector<float> w = random_floats(static_cast<std::size_t>(p.m * (p.c / p.group) * p.kh * p.kw), seed++);
    w[0] = 0.0f;  // zero weights are skipped; the result must not change
    const std::vector<float> b = random_floats(static_cast<std::size_t>(p.m), seed++);
    ModelBuilder mb;
    mb.input("x", {p.c, p.h, p.w}).output("y");
    mb.initializer("w", {p.m, p.c / p.group, p.kh, p.kw}, w);
    if (p.bias) mb.initializer("b", {p.m}, b);
    auto& n = mb.node("Conv", p.bias ? std::vector<std::string>{"x", "w", "b"} : std::vector<std::string>{"x", "w"}, {"y"});
    attr(n, "group", p.group);
    attr(n, "strides", Ints{p.sh, p.sw});
    attr(n, "dilations", Ints{p.dh, p.dw});
    attr(n, "pads", Ints{p.pt, p.pl, p.pb, p.pr});
    // Batch 3: the kernel's loops; batch 9: matrix products where a group has >= 4 outputs.
    for (const std::int64_t batch : {3, 9}) {
      const auto x = random_floats(static_cast<std::size_t>(batch * p.c * p.h * p.w), seed++);
      model::Shape shape;
      const auto y = run(mb.load(), x, batch, &shape);
      EXPECT_EQ(shape, (model::Shape{p.m, oh, ow}));
      const auto ref = naive_conv(p, x, batch, w, b, oh, ow);
      ASSERT_EQ(y.size(), ref.size());
      for (std::size_t i = 0; i < y.size(); ++i) {
        ASSERT_NEAR(y[i], ref[i], 1e-12) << "case group=" << p.group << " m=" << p.m << " batch=" << batch << " i=" << i;
      }
    }
  }
}

// A residual Add fused into its Conv (model/residual_fusion.h) adds the skip to every
// output, on both plaintext paths, and the chunks of the matrix-product path tile the
// output positions exactly.
TEST(Kernels, ConvWithResidualInputMatchesConvPlusAdd) {
  const ConvCase p{4, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true};
  const auto w = random_floats(4 * 4 * 9, 41), b = random_floats(4, 42);
  ModelBuilder mb;
  mb.input("x", {4, 7, 5}).output("y");
  mb.initializer("w", {4, 4, 3, 3}, w);
  mb.initializer("b", {4}, b);
  mb.node("Relu", {"x"}, {"r"});
  attr(mb.node("Conv", {"r", "w", "b"}, {"c"}), "pads", Ints{1, 1, 1, 1});
  mb.node("Add", {"r", "c"}, {"y"});
  const model::Graph g = mb.load();
  ASSERT_EQ(g.nodes.size(), 2u);
  ASSERT_TRUE(std::get<model::ConvParams>(g.nodes[1].params).residual);
  for (const std::int64_t batch : {3, 9}) {
    auto x = random_floats(static_cast<std::size_t>(batch * 4 * 7 * 5), 43 + static_cast<std::uint32_t>(batch));
    std::vector<float> r(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) r[i] = std::max(0.0f, x[i]);
    const auto ref = naive_conv(p, r, batch, w, b, 7, 5);
    const auto y = run(g, x, batch);
    ASSERT_EQ(y.size(), ref.size());
    for (std::size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i] + r[i], 1e-12) << "batch " << batch << " i=" << i;
  }
  // The matrix-product path in chunks of 1..35 output positions.
  const std::int64_t batch = 9;
  const auto x = random_floats(static_cast<std::size_t>(batch * 4 * 7 * 5), 47, 0.0f, 1.0f);
  const runtime::PlainTensor xt = runtime::from_batch_major(std::span<const float>(x), batch, {4, 7, 5});
  const auto& cp = std::get<model::ConvParams>(g.nodes[1].params);
  const auto& wt = g.tensors[static_cast<std::size_t>(g.nodes[1].inputs[1])].data;
  const auto& bt = g.tensors[static_cast<std::size_t>(g.nodes[1].inputs[2])].data;
  runtime::PlainTensor whole = runtime::make_plain_tensor({4, 7, 5}, batch);
  runtime::plain_conv(cp, wt, bt, xt, &xt, whole);
  for (const std::int64_t positions : {1, 4, 34}) {
    runtime::PlainTensor y = runtime::make_plain_tensor({4, 7, 5}, batch);
    runtime::plain_conv(cp, wt, bt, xt, &xt, y, positions * 36 * batch * 8);
    ASSERT_EQ(y.data.size(), whole.data.size());
    for (std::size_t i = 0; i < y.data.size(); ++i) ASSERT_NEAR(y.data[i], whole.data[i], 1e-12) << positions << " " << i;
  }
}

model::Graph pool_model(const char* op, const Ints& kernel, const Ints& strides, const Ints& pads,
                        bool ceil, bool include_pad, std::int64_t c, std::int64_t h, std::int64_t w,
                        const Ints& dilations = {}) {
  ModelBuilder b;
  b.input("x", {c, h, w}).output("y");
  auto& n = b.node(op, {"x"}, {"y"});
  attr(n, "kernel_shape", kernel);
  attr(n, "strides", strides);
  attr(n, "pads", pads);
  attr(n, "ceil_mode", std::int64_t{ceil});
  if (std::string(op) == "AveragePool") attr(n, "count_include_pad", std::int64_t{include_pad});
  if (!dilations.empty()) attr(n, "dilations", dilations);
  return b.load();
}

std::vector<float> arange(std::size_t n, float sign = 1.0f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = sign * static_cast<float>(i);
  return v;
}

void expect_values(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "element " << i;
}

// Expected values: torch.nn.functional.avg_pool2d / max_pool2d (torch 1.13, float64).
TEST(Kernels, AveragePoolCeilModeAndCountIncludePadMatchPyTorch) {
  const auto x5 = arange(25);
  expect_values(run(pool_model("AveragePool", {3, 3}, {2, 2}, {1, 1, 1, 1}, true, true, 1, 5, 5), x5, 1),
                {4.0 / 3, 3.0, 8.0 / 3, 7.0, 12.0, 9.0, 8.0, 13.0, 28.0 / 3});
  expect_values(run(pool_model("AveragePool", {3, 3}, {2, 2}, {1, 1, 1, 1}, true, false, 1, 5, 5), x5, 1),
                {3.0, 4.5, 6.0, 10.5, 12.0, 13.5, 18.0, 19.5, 21.0});
  expect_values(run(pool_model("AveragePool", {2, 2}, {2, 2}, {1, 1, 1, 1}, true, true, 1, 6, 6), arange(36), 1),
                {0.0, 0.75, 1.75, 1.25, 4.5, 10.5, 12.5, 7.0, 10.5, 22.5, 24.5, 13.0, 7.5, 15.75, 16.75, 8.75});
}

TEST(Kernels, MaxPoolDilatedCeilModeMatchesPyTorch) {
  expect_values(run(pool_model("MaxPool", {3, 3}, {2, 2}, {1, 1, 1, 1}, true, false, 1, 6, 6, {2, 2}),
                    arange(36, -1.0f), 1),
                {-7, -7, -9, -7, -7, -9, -19, -19, -21});
}

TEST(Kernels, PoolsMatchNaiveReferenceOverBatchAndChannels) {
  const std::int64_t n = 4, c = 3, h = 7, w = 6;
  const auto x = random_floats(static_cast<std::size_t>(n * c * h * w), 7);
  const model::Graph avg = pool_model("AveragePool", {3, 2}, {2, 2}, {1, 0, 1, 1}, false, false, c, h, w);
  const model::Graph mx = pool_model("MaxPool", {3, 2}, {2, 2}, {1, 0, 1, 1}, false, false, c, h, w);
  model::Shape shape;
  const auto ya = run(avg, x, n, &shape);
  const auto ym = run(mx, x, n);
  const std::int64_t oh = shape[1], ow = shape[2];
  ASSERT_EQ(oh, (7 + 2 - 3) / 2 + 1);
  ASSERT_EQ(ow, (6 + 1 - 2) / 2 + 1);
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t i = 0; i < oh; ++i)
        for (std::int64_t j = 0; j < ow; ++j) {
          double sum = 0, best = -INFINITY;
          int count = 0;
          for (std::int64_t ki = 0; ki < 3; ++ki)
            for (std::int64_t kj = 0; kj < 2; ++kj) {
              const std::int64_t hi = i * 2 - 1 + ki, wi = j * 2 + kj;
              if (hi < 0 || hi >= h || wi < 0 || wi >= w) continue;
              const double v = x[static_cast<std::size_t>(((s * c + ch) * h + hi) * w + wi)];
              sum += v;
              best = std::max(best, v);
              ++count;
            }
          const auto o = static_cast<std::size_t>(((s * c + ch) * oh + i) * ow + j);
          EXPECT_NEAR(ya[o], sum / count, 1e-12);
          EXPECT_EQ(ym[o], best);
        }
}

TEST(Kernels, GemmAndMatMulMatchNaiveReference) {
  const std::int64_t n = 5, k = 7, m = 4;
  const auto x = random_floats(static_cast<std::size_t>(n * k), 11);
  const auto w = random_floats(static_cast<std::size_t>(m * k), 12);
  const auto c = random_floats(static_cast<std::size_t>(m), 13);
  ModelBuilder b;
  b.input("x", {k}).output("y");
  b.initializer("w", {m, k}, w);
  b.initializer("c", {m}, c);
  auto& g = b.node("Gemm", {"x", "w", "c"}, {"y"});
  attr(g, "transB", std::int64_t{1});
  attr(g, "alpha", 0.5f);
  attr(g, "beta", 2.0f);
  const auto y = run(b.load(), x, n);
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t j = 0; j < m; ++j) {
      double acc = 2.0 * c[static_cast<std::size_t>(j)];
      for (std::int64_t i = 0; i < k; ++i) {
        acc += 0.5 * static_cast<double>(w[static_cast<std::size_t>(j * k + i)]) * x[static_cast<std::size_t>(s * k + i)];
      }
      EXPECT_NEAR(y[static_cast<std::size_t>(s * m + j)], acc, 1e-12);
    }

  // Constant on the left: W [3, 2] @ x [2, 4] per sample.
  ModelBuilder l;
  l.input("x", {2, 4}).output("y");
  l.initializer("w", {3, 2}, {1, 2, 3, 4, 5, 6});
  l.node("MatMul", {"w", "x"}, {"y"});
  const auto xl = arange(8);
  expect_values(run(l.load(), xl, 1), {8, 11, 14, 17, 16, 23, 30, 37, 24, 35, 46, 57});
}

TEST(Kernels, ElementwiseBroadcastSquareAndResidualAdd) {
  ModelBuilder b;
  b.input("x", {2, 3}).input("r", {2, 3}).output("y");
  b.initializer("c", {3}, {1, 2, 3});
  b.initializer("d", {2, 1}, {2, 4});
  b.node("Sub", {"c", "x"}, {"a"});     // c - x (constant first)
  b.node("Div", {"a", "d"}, {"q"});     // / per-row constant
  b.node("Mul", {"q", "q"}, {"s"});     // square
  b.node("Add", {"s", "r"}, {"y"});     // residual add of two tensors
  const model::Graph g = b.load();
  const std::int64_t n = 2;
  const auto x = random_floats(12, 21), r = random_floats(12, 22);
  std::vector<runtime::PlainTensor> in;
  in.push_back(runtime::from_batch_major(std::span<const float>(x), n, {2, 3}));
  in.push_back(runtime::from_batch_major(std::span<const float>(r), n, {2, 3}));
  const auto y = runtime::to_batch_major(runtime::run_plain(g, std::move(in))[0]);
  const double c[] = {1, 2, 3}, d[] = {2, 4};
  for (std::size_t s = 0; s < 2; ++s)
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t j = 0; j < 3; ++j) {
        const std::size_t e = s * 6 + i * 3 + j;
        const double q = (c[j] - x[e]) / d[i];
        EXPECT_NEAR(y[e], q * q + r[e], 1e-12);
      }
}

TEST(Kernels, ConcatWithConstantPadTransposeAndSoftmax) {
  ModelBuilder b(13);
  b.input("x", {2, 2}).output("y");
  b.initializer("k", {1, 1, 2}, {7, 8});
  attr(b.node("Concat", {"x", "k"}, {"c"}), "axis", std::int64_t{1});   // [3, 2]
  b.initializer_i64("pads", {6}, {0, 0, 0, 0, 1, 0});
  b.initializer("v", {}, {-1});
  b.node("Pad", {"c", "pads", "v"}, {"p"});                               // [4, 2]
  attr(b.node("Transpose", {"p"}, {"t"}), "perm", Ints{0, 2, 1});        // [2, 4]
  b.node("Softmax", {"t"}, {"y"});
  model::Shape shape;
  const auto y = run(b.load(), {1, 2, 3, 4}, 1, &shape);
  EXPECT_EQ(shape, (model::Shape{2, 4}));
  // rows after transpose: [1, 3, 7, -1] and [2, 4, 8, -1]
  const double rows[2][4] = {{1, 3, 7, -1}, {2, 4, 8, -1}};
  for (int r = 0; r < 2; ++r) {
    double sum = 0;
    for (double v : rows[r]) sum += std::exp(v);
    for (int j = 0; j < 4; ++j) EXPECT_NEAR(y[static_cast<std::size_t>(r * 4 + j)], std::exp(rows[r][j]) / sum, 1e-12);
  }
}

TEST(Kernels, ClientAidedActivations) {
  ModelBuilder b(13);
  b.input("x", {4}).output("r").output("c").output("l").output("ls");
  b.node("Relu", {"x"}, {"r"});
  b.initializer("lo", {}, {0});
  b.initializer("hi", {}, {6});
  b.node("Clip", {"x", "lo", "hi"}, {"c"});
  attr(b.node("LeakyRelu", {"x"}, {"l"}), "alpha", 0.1f);
  b.node("LogSoftmax", {"x"}, {"ls"});
  const model::Graph g = b.load();
  const std::vector<float> x{-2, 0.5, 7, 3};
  std::vector<runtime::PlainTensor> in;
  in.push_back(runtime::from_batch_major(std::span<const float>(x), 1, {4}));
  const auto out = runtime::run_plain(g, std::move(in));
  expect_values(out[0].data, {0, 0.5, 7, 3});
  expect_values(out[1].data, {0, 0.5, 6, 3});
  expect_values(out[2].data, {-0.2f * 1.0, 0.5, 7, 3});
  double lse = 0;
  for (float v : x) lse += std::exp(static_cast<double>(v));
  lse = std::log(lse);
  expect_values(out[3].data, {-2 - lse, 0.5 - lse, 7 - lse, 3 - lse});
}

}  // namespace
}  // namespace heinfer
