#include "runtime/kernels/client_aided.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "model/activation_fn.h"
#include "model/window_indexer.h"

namespace heinfer::runtime::kernels {
namespace {

/// Smallest loop (in doubles touched) run as an OpenMP parallel region.
constexpr std::int64_t kParallelMin = 1 << 18;

template <class F>
void map(const PlainTensor& x, PlainTensor& y, F f) {
  const auto n = static_cast<std::int64_t>(x.data.size());
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (std::int64_t i = 0; i < n; ++i) {
    y.data[static_cast<std::size_t>(i)] = f(x.data[static_cast<std::size_t>(i)]);
  }
}

template <bool Log>
void softmax_impl(const model::SoftmaxParams& p, const PlainTensor& x, PlainTensor& y) {
  const std::int64_t batch = x.batch;
  const std::int64_t lines = p.outer * p.inner;
#pragma omp parallel for schedule(static) if (lines * p.n * batch >= kParallelMin)
  for (std::int64_t line = 0; line < lines; ++line) {
    const std::int64_t o = line / p.inner, i = line % p.inner;
    auto at = [&](std::int64_t j, std::int64_t b) {
      return static_cast<std::size_t>(((o * p.n + j) * p.inner + i) * batch + b);
    };
    for (std::int64_t b = 0; b < batch; ++b) {
      double mx = -std::numeric_limits<double>::infinity();
      for (std::int64_t j = 0; j < p.n; ++j) mx = std::max(mx, x.data[at(j, b)]);
      double sum = 0.0;
      for (std::int64_t j = 0; j < p.n; ++j) sum += std::exp(x.data[at(j, b)] - mx);
      for (std::int64_t j = 0; j < p.n; ++j) {
        const double shifted = x.data[at(j, b)] - mx;
        y.data[at(j, b)] = Log ? shifted - std::log(sum) : std::exp(shifted) / sum;
      }
    }
  }
}

}  // namespace

void elementwise_function(model::OpType op, const model::ActivationParams& p, const PlainTensor& x,
                       PlainTensor& y) {
  map(x, y, [&](double v) { return model::activation_value(op, p, v); });
}

void relu(const PlainTensor& x, PlainTensor& y) {
  map(x, y, [](double v) { return v > 0.0 ? v : 0.0; });
}

void clip(const model::ClipParams& p, const PlainTensor& x, PlainTensor& y) {
  map(x, y, [&](double v) { return std::min(std::max(v, p.min), p.max); });
}

void leaky_relu(const model::LeakyReluParams& p, const PlainTensor& x, PlainTensor& y) {
  map(x, y, [&](double v) { return v < 0.0 ? p.alpha * v : v; });
}

void max_pool(const model::PoolParams& p, const PlainTensor& x, PlainTensor& y) {
  const model::WindowIndexer win(x.shape, y.shape, p.kernel, p.strides, p.dilations, p.pads_begin,
                          p.pads_end);
  const std::int64_t total = y.shape[0] * win.out_size, batch = x.batch;
#pragma omp parallel for schedule(static) if (total * win.kernel_size * batch >= kParallelMin)
  for (std::int64_t idx = 0; idx < total; ++idx) {
    const std::int64_t c = idx / win.out_size;
    std::array<std::int64_t, model::kMaxSpatialDims> base;
    win.origin(idx % win.out_size, base);
    double* out = y.data.data() + idx * batch;
    std::fill(out, out + batch, -std::numeric_limits<double>::infinity());
    for (std::int64_t kp = 0; kp < win.kernel_size; ++kp) {
      const std::int64_t off = win.input_offset(base, kp);
      if (off < 0) continue;
      const double* in = x.data.data() + (c * win.in_size + off) * batch;
      for (std::int64_t b = 0; b < batch; ++b) out[b] = std::max(out[b], in[b]);
    }
  }
}

void softmax(const model::SoftmaxParams& p, const PlainTensor& x, PlainTensor& y) {
  softmax_impl<false>(p, x, y);
}

void log_softmax(const model::SoftmaxParams& p, const PlainTensor& x, PlainTensor& y) {
  softmax_impl<true>(p, x, y);
}

}  // namespace heinfer::runtime::kernels
