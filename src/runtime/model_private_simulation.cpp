#include "runtime/model_private_simulation.h"

#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include "model/window_indexer.h"

namespace heinfer::runtime {
namespace {

void check_bound(const plan::ReluApproximation& r, double d, const model::Node& n) {
  if (!(std::fabs(d) <= r.bound)) {
    throw std::runtime_error(model::node_label(n) + ": a value (" + std::to_string(d) + ") leaves the approximation's bound " +
                             std::to_string(r.bound) + "; a larger margin is needed");
  }
}

/// max over each window as a balanced tree of b + r(a - b), in-bounds positions only.
void approximate_max_pool(const model::Node& n, const plan::ReluApproximation& r, const PlainTensor& x, PlainTensor& y) {
  const auto& p = std::get<model::PoolParams>(n.params);
  const model::WindowIndexer win(x.shape, y.shape, p.kernel, p.strides, p.dilations, p.pads_begin, p.pads_end);
  const std::int64_t total = y.shape[0] * win.out_size, batch = x.batch;
  for (std::int64_t idx = 0; idx < total; ++idx) {
    const std::int64_t c = idx / win.out_size;
    std::array<std::int64_t, model::kMaxSpatialDims> base;
    win.origin(idx % win.out_size, base);
    std::vector<const double*> rows;
    for (std::int64_t kp = 0; kp < win.kernel_size; ++kp) {
      const std::int64_t off = win.input_offset(base, kp);
      if (off >= 0) rows.push_back(x.data.data() + (c * win.in_size + off) * batch);
    }
    double* out = y.data.data() + idx * batch;
    std::vector<double> level(rows.size());  // one buffer, reduced in place: no allocation per sample
    for (std::int64_t b = 0; b < batch; ++b) {
      std::size_t m = rows.size();
      for (std::size_t i = 0; i < m; ++i) level[i] = rows[i][b];
      while (m > 1) {  // pairs (2i, 2i+1) -> i; an odd last one moves up unchanged
        for (std::size_t i = 0; i + 1 < m; i += 2) {
          const double d = level[i] - level[i + 1];
          check_bound(r, d, n);
          level[i / 2] = level[i + 1] + r(d);
        }
        if (m % 2) level[m / 2] = level[m - 1];
        m = (m + 1) / 2;
      }
      out[b] = rows.empty() ? 0.0 : level[0];
    }
  }
}

}  // namespace

std::vector<PlainTensor> run_plain_approximated(const model::Graph& g, std::vector<PlainTensor> inputs,
                                                const std::map<std::size_t, plan::NodeApproximation>& approximations,
                                                const PlainRunOptions& options) {
  PlainRunOptions o = options;
  o.replace = [&](std::size_t k, const std::vector<const PlainTensor*>& in, PlainTensor& y) {
    const auto it = approximations.find(k);
    if (it == approximations.end()) return false;
    const model::Node& n = g.nodes[k];
    const plan::NodeApproximation& a = it->second;
    if (a.deferred) {
      y.data = in[0]->data;  // the MaxPool it feeds applies it
      return true;
    }
    if (a.max) approximate_max_pool(n, *a.max, *in[0], y);
    if (a.relu) {  // after a max: Relu; else the node's combination of Relus
      const std::vector<double>& src = a.max ? y.data : in[0]->data;
      const plan::ReluCombination comb = a.max ? plan::ReluCombination{0, {{1, 0, 1}}} : plan::relu_combination(n);
      std::vector<double> out(src.size());
      for (std::size_t i = 0; i < src.size(); ++i) {
        double v = comb.constant;
        for (const plan::ReluTerm& t : comb.terms) {
          const double u = t.scale * src[i] + t.shift;
          check_bound(*a.relu, u, n);
          v += t.sign * (*a.relu)(u);
        }
        out[i] = v;
      }
      y.data = std::move(out);
    }
    return true;
  };
  return run_plain(g, std::move(inputs), o);
}

}  // namespace heinfer::runtime
