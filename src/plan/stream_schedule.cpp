#include "plan/stream_schedule.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <stdexcept>

#include "model/liveness.h"
#include "model/op_params.h"

namespace heinfer::plan {

std::int64_t RowMap::begin(std::int64_t a) const {
  if (all) return 0;
  return std::clamp<std::int64_t>(a * stride - offset, 0, in_rows);
}

std::int64_t RowMap::end(std::int64_t b) const {
  if (all) return in_rows;
  if (b <= 0) return 0;
  return std::clamp<std::int64_t>((b - 1) * stride - offset + extent, 0, in_rows);
}

namespace {

bool is_chw(const model::Shape& s) { return s.size() == 3 && s[1] >= 1 && s[2] >= 1; }

/// The window map of a Conv / pool over spatial dim `axis` (0: H, 1: W).
RowMap window_map(const model::Shape& kernel, const model::Shape& strides, const model::Shape& dilations,
                  const model::Shape& pads_begin, std::int64_t in_rows, std::size_t axis) {
  RowMap m;
  m.stride = strides.size() > axis ? strides[axis] : 1;
  m.offset = pads_begin.size() > axis ? pads_begin[axis] : 0;
  const std::int64_t d = dilations.size() > axis ? dilations[axis] : 1;
  m.extent = (kernel[axis] - 1) * d + 1;
  m.in_rows = in_rows;
  return m;
}

/// row_map over per-sample dim 1 + axis (axis 0: rows, 1: columns).
std::optional<RowMap> axis_map(const model::Graph& g, const model::Node& n, std::size_t input, std::size_t axis) {
  using model::OpType;
  if (n.outputs.size() != 1 || input >= n.inputs.size()) return std::nullopt;
  const model::TensorId in_id = n.inputs[input];
  if (in_id == model::kNoTensor) return std::nullopt;
  const model::Shape& y = g.tensors[static_cast<std::size_t>(n.outputs[0])].shape;
  const model::Shape& x = g.tensors[static_cast<std::size_t>(in_id)].shape;
  if (!is_chw(y) || !is_chw(x)) return std::nullopt;
  RowMap same;
  const std::size_t d = 1 + axis;
  same.in_rows = x[d];
  switch (n.op) {
    case OpType::Conv: {
      const auto* p = std::get_if<model::ConvParams>(&n.params);
      if (p && p->residual && input == 3) return x[d] == y[d] ? std::optional<RowMap>(same) : std::nullopt;
      if (!p || input != 0 || p->kernel.size() != 2) return std::nullopt;
      return window_map(p->kernel, p->strides, p->dilations, p->pads_begin, x[d], axis);
    }
    case OpType::AveragePool:
    case OpType::MaxPool: {
      const auto* p = std::get_if<model::PoolParams>(&n.params);
      if (!p || input != 0 || p->kernel.size() != 2) return std::nullopt;
      return window_map(p->kernel, p->strides, p->dilations, p->pads_begin, x[d], axis);
    }
    case OpType::Add:
    case OpType::Sub:
    case OpType::Mul:
    case OpType::Div:
      if (!std::holds_alternative<model::BinaryParams>(n.params)) return std::nullopt;
      if (x[d] == y[d]) return same;
      if (x[d] == 1) {
        same.all = true;
        return same;
      }
      return std::nullopt;
    case OpType::BatchNormalization:
    case OpType::Relu:
    case OpType::Clip:
    case OpType::LeakyRelu:
    case OpType::Identity:
    case OpType::Dropout:
      if (input != 0 || x[d] != y[d]) return std::nullopt;
      if (std::holds_alternative<model::SquareParams>(n.params)) return std::nullopt;
      return same;
    default: return std::nullopt;
  }
}

}  // namespace

std::optional<RowMap> row_map(const model::Graph& g, const model::Node& n, std::size_t input) {
  return axis_map(g, n, input, 0);
}

std::optional<RowMap> column_map(const model::Graph& g, const model::Node& n, std::size_t input) {
  return axis_map(g, n, input, 1);
}

std::vector<StreamStep> stream_schedule(const model::Graph& g, const std::vector<bool>& streamable,
                                        const StreamOptions& options) {
  const std::size_t nodes = g.nodes.size();
  if (streamable.size() != nodes) throw std::invalid_argument("stream_schedule: one flag per node expected");
  std::vector<bool> cut(nodes, false);
  for (std::int64_t c : options.segment_starts) {
    if (c < 0 || c >= static_cast<std::int64_t>(nodes)) throw std::invalid_argument("stream_schedule: segment start out of range");
    cut[static_cast<std::size_t>(c)] = true;
  }
  // Segments: maximal runs of at least two consecutive streamable nodes, split at cuts.
  std::vector<std::int64_t> segment(nodes, -1);
  for (std::size_t k = 0; k < nodes;) {
    if (!streamable[k]) {
      ++k;
      continue;
    }
    std::size_t e = k + 1;
    while (e < nodes && streamable[e] && !cut[e]) ++e;
    if (e - k >= 2) {
      for (std::size_t j = k; j < e; ++j) segment[j] = static_cast<std::int64_t>(k);
    }
    k = e;
  }
  std::vector<std::int64_t> producer(g.tensors.size(), -1);
  for (std::size_t k = 0; k < nodes; ++k) {
    for (model::TensorId t : g.nodes[k].outputs) producer[static_cast<std::size_t>(t)] = static_cast<std::int64_t>(k);
  }
  const auto readers = model::consumers(g);
  const auto last_reader = model::last_use(g);
  // A tensor is released row by row (internal) when all its readers are in one segment
  // and it is no graph output: produced in that segment, or whole before it (a graph
  // input, the output of an earlier node or segment, which completes before the next
  // segment starts: its rows go as the segment's readers pass).
  auto reader_segment = [&](model::TensorId t) -> std::int64_t {
    const auto& rs = readers[static_cast<std::size_t>(t)];
    const model::Tensor& tensor = g.tensors[static_cast<std::size_t>(t)];
    if (rs.empty() || tensor.is_constant || !is_chw(tensor.shape) || model::is_graph_output(g, t)) return -1;
    const std::int64_t s0 = segment[static_cast<std::size_t>(rs[0])];
    for (int c : rs) {
      if (segment[static_cast<std::size_t>(c)] != s0) return -1;
    }
    return s0;
  };
  auto produced_in_segment = [&](model::TensorId t) {
    const std::int64_t p = producer[static_cast<std::size_t>(t)];
    return p >= 0 && segment[static_cast<std::size_t>(p)] >= 0;
  };
  auto internal = [&](model::TensorId t) { return reader_segment(t) >= 0; };
  auto rows_of = [&](std::size_t k) { return g.tensors[static_cast<std::size_t>(g.nodes[k].outputs[0])].shape[1]; };
  std::vector<std::int64_t> done(nodes, 0), released(g.tensors.size(), 0);
  std::vector<StreamStep> steps;
  steps.reserve(nodes);

  // The first input row of t that reader c still needs (its next band starts at done[c]).
  auto still_needed = [&](model::TensorId t) {
    std::int64_t r = g.tensors[static_cast<std::size_t>(t)].shape[1];
    for (int c : readers[static_cast<std::size_t>(t)]) {
      const auto ck = static_cast<std::size_t>(c);
      if (done[ck] >= rows_of(ck)) continue;
      const model::Node& cn = g.nodes[ck];
      for (std::size_t i = 0; i < cn.inputs.size(); ++i) {
        if (cn.inputs[i] != t) continue;
        const auto m = row_map(g, cn, i);
        r = std::min(r, m ? m->begin(done[ck]) : 0);
      }
    }
    return r;
  };

  std::function<void(std::size_t, std::int64_t)> ensure;
  auto step = [&](std::size_t k) {
    const model::Node& n = g.nodes[k];
    const std::int64_t h = rows_of(k);
    const model::Shape& ys = g.tensors[static_cast<std::size_t>(n.outputs[0])].shape;
    const std::int64_t row = ys[0] * ys[2];
    const std::int64_t band = std::max<std::int64_t>(1, (options.band_elements + row - 1) / row);
    const std::int64_t a = done[k], b = std::min(h, a + band);
    if (b == h) {
      // The executor frees the inputs whose last reader (in graph order) is k after k's
      // last step (model::activations_to_free): complete their producers (rows no reader
      // needs included) and their other readers first.
      for (model::TensorId t : n.inputs) {
        if (!model::is_activation(g, t)) continue;
        if (last_reader[static_cast<std::size_t>(t)] != static_cast<int>(k)) continue;
        const std::int64_t p = producer[static_cast<std::size_t>(t)];
        if (p >= 0 && segment[static_cast<std::size_t>(p)] == segment[k]) ensure(static_cast<std::size_t>(p), rows_of(static_cast<std::size_t>(p)));
        for (int c : readers[static_cast<std::size_t>(t)]) {
          const auto ck = static_cast<std::size_t>(c);
          if (ck != k && segment[ck] == segment[k]) ensure(ck, rows_of(ck));
        }
      }
    }
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const model::TensorId t = n.inputs[i];
      if (!model::is_activation(g, t)) continue;
      const std::int64_t p = producer[static_cast<std::size_t>(t)];
      if (p < 0 || segment[static_cast<std::size_t>(p)] != segment[k]) continue;
      const auto m = row_map(g, n, i);
      if (!m) throw std::invalid_argument("stream_schedule: node '" + n.name + "' has no row map for input " + std::to_string(i));
      ensure(static_cast<std::size_t>(p), m->end(b));
    }
    StreamStep s;
    s.node = static_cast<std::int64_t>(k);
    s.row_begin = a;
    s.row_end = b;
    s.streamed = true;
    s.first = a == 0;
    s.last = b == h;
    s.segment = segment[k];
    done[k] = b;
    // Release the rows of the inputs (and of the output: rows no reader needs) that are
    // produced and that no reader needs any more.
    auto release = [&](model::TensorId t) {
      if (t == model::kNoTensor || !internal(t)) return;
      const std::int64_t produced = produced_in_segment(t)
                                        ? done[static_cast<std::size_t>(producer[static_cast<std::size_t>(t)])]
                                        : g.tensors[static_cast<std::size_t>(t)].shape[1];
      const std::int64_t r = std::min(still_needed(t), produced);
      if (r > released[static_cast<std::size_t>(t)]) {
        released[static_cast<std::size_t>(t)] = r;
        auto q = std::find_if(s.release.begin(), s.release.end(), [&](const auto& e) { return e.first == t; });
        if (q == s.release.end()) s.release.emplace_back(t, r);
        else q->second = r;
      }
    };
    for (model::TensorId t : n.inputs) release(t);
    release(n.outputs[0]);
    steps.push_back(std::move(s));
  };
  ensure = [&](std::size_t k, std::int64_t rows) {
    while (done[k] < rows) step(k);
  };

  for (std::size_t k = 0; k < nodes; ++k) {
    if (segment[k] < 0) {
      StreamStep s;
      s.node = static_cast<std::int64_t>(k);
      const model::Shape& ys = g.tensors[static_cast<std::size_t>(g.nodes[k].outputs[0])].shape;
      s.row_end = is_chw(ys) ? ys[1] : 0;
      steps.push_back(std::move(s));
      continue;
    }
    // Streamed: drive the segment's outputs (tensors read after the segment, or by
    // nobody) to completion when their turn in the node order comes; at the segment's
    // end, complete every node (rows no reader needed included).
    const model::TensorId out = g.nodes[k].outputs[0];
    if (reader_segment(out) != segment[k] || readers[static_cast<std::size_t>(out)].empty()) ensure(k, rows_of(k));
    if (k + 1 == nodes || segment[k + 1] != segment[k]) {
      for (auto j = static_cast<std::size_t>(segment[k]); j <= k; ++j) ensure(j, rows_of(j));
    }
  }
  return steps;
}

std::vector<bool> inputs_on_demand(const model::Graph& g, const std::vector<StreamStep>& steps) {
  std::vector<bool> streamed(g.nodes.size(), false), out(g.tensors.size(), false);
  for (const auto& s : steps) {
    if (s.streamed) streamed[static_cast<std::size_t>(s.node)] = true;
  }
  const auto readers = model::consumers(g);
  for (model::TensorId t : g.inputs) {
    const auto ti = static_cast<std::size_t>(t);
    if (!is_chw(g.tensors[ti].shape) || readers[ti].empty() || model::is_graph_output(g, t)) continue;
    bool all = true;
    for (int c : readers[ti]) all = all && streamed[static_cast<std::size_t>(c)];
    out[ti] = all;
  }
  return out;
}

}  // namespace heinfer::plan
