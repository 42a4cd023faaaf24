#include "plan/partition.h"

#include <algorithm>
#include <stdexcept>

#include "plan/node_kind.h"
#include "plan/stream_schedule.h"

namespace heinfer::plan {
namespace {

bool is_chw(const model::Shape& s) { return s.size() == 3 && s[1] >= 1 && s[2] >= 1; }

TensorSplit columns_of(std::int64_t width, int ranks) {
  TensorSplit s;
  s.distributed = true;
  s.width = width;
  for (int r = 0; r <= ranks; ++r) s.bounds.push_back(width * r / ranks);
  return s;
}

/// Relayouts that keep their input's element order (row-major): a Flatten of
/// [C, H, W] keeps element e at index e; a Transpose does not.
bool keeps_order(model::OpType op) { return is_relayout(op) && op != model::OpType::Transpose; }

/// Element-wise client rounds (every round but MaxPool's windows) and a fused Relu.
bool elementwise_round(NodeKind k) { return (is_round(k) && k != NodeKind::MaxPool) || k == NodeKind::FusedRelu; }

}  // namespace

int TensorSplit::owner(std::int64_t e) const {
  if (!distributed) return 0;
  const std::int64_t c = e % width;
  // The last r with bounds[r] <= c (empty slabs share a bound with the next one).
  const auto it = std::upper_bound(bounds.begin(), bounds.end(), c);
  return static_cast<int>(it - bounds.begin()) - 1;
}

std::pair<std::int64_t, std::int64_t> TensorSplit::columns(int r) const {
  if (!distributed) return r == 0 ? std::pair<std::int64_t, std::int64_t>{0, width} : std::pair<std::int64_t, std::int64_t>{0, 0};
  return {bounds[static_cast<std::size_t>(r)], bounds[static_cast<std::size_t>(r) + 1]};
}

Partition partition_columns(const model::Graph& g, const EncryptedPlan& plan, int ranks) {
  if (ranks < 1) throw std::invalid_argument("a partition needs at least one rank");
  if (plan.nodes.size() != g.nodes.size() || plan.tensors.size() != g.tensors.size()) {
    throw std::invalid_argument("partition: the plan does not match the graph");
  }
  Partition p;
  p.ranks = ranks;
  p.tensors.resize(g.tensors.size());
  p.nodes.assign(g.nodes.size(), NodeSplit::Root);
  for (model::TensorId t : g.inputs) {
    const model::Shape& s = g.tensors[static_cast<std::size_t>(t)].shape;
    if (is_chw(s)) p.tensors[static_cast<std::size_t>(t)] = columns_of(s[2], ranks);
  }
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    const NodeKind kind = plan.nodes[k].kind;
    const model::Shape& y = g.tensors[static_cast<std::size_t>(n.outputs[0])].shape;
    bool any_distributed = false, spatial = is_chw(y) && kind != NodeKind::FinalSoftmax, one_input = true;
    const TensorSplit* first = nullptr;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      if (!model::is_activation(g, n.inputs[i])) continue;
      const TensorSplit& s = p.tensors[static_cast<std::size_t>(n.inputs[i])];
      if (first) one_input = false;
      else first = &s;
      any_distributed = any_distributed || s.distributed;
      spatial = spatial && row_map(g, n, i) && column_map(g, n, i);
    }
    if (!first) continue;  // no encrypted input: rank 0's
    NodeSplit& ns = p.nodes[k];
    TensorSplit& out = p.tensors[static_cast<std::size_t>(n.outputs[0])];
    if (spatial) {
      ns = NodeSplit::Spatial;
      out = columns_of(y[2], ranks);
    } else if (!any_distributed || kind == NodeKind::FinalSoftmax) {
      ns = NodeSplit::Root;
    } else if (one_input && ((kind == NodeKind::DataMovement && keeps_order(n.op)) ||
                             (elementwise_round(kind) &&
                              model::numel(y) == model::numel(g.tensors[static_cast<std::size_t>(model::first_activation_input(g, n))].shape)))) {
      ns = NodeSplit::Inherit;
      out = *first;
    } else if (kind == NodeKind::Linear) {
      ns = NodeSplit::Reduce;
    }
  }
  return p;
}

std::vector<std::int64_t> round_requests(const model::Graph& g, const EncryptedPlan& plan, const Partition& p) {
  std::vector<std::int64_t> requests(g.nodes.size(), 0);
  std::vector<std::int64_t> items(static_cast<std::size_t>(p.ranks));
  for (const StreamStep& st : plan.steps) {
    const auto k = static_cast<std::size_t>(st.node);
    const NodePlan& np = plan.nodes[k];
    if (np.round_items <= 0) continue;
    const model::TensorId y = g.nodes[k].outputs[0];
    const model::Shape& ys = g.tensors[static_cast<std::size_t>(y)].shape;
    const TensorSplit& split = p.tensors[static_cast<std::size_t>(y)];
    std::fill(items.begin(), items.end(), 0);
    if (p.nodes[k] == NodeSplit::Root) {
      items[0] = st.streamed ? ys[0] * (st.row_end - st.row_begin) * ys[2] : np.output_ciphertexts;
    } else if (st.streamed) {  // a band of rows of a [C, H, W] output: C·rows elements per column
      for (int r = 0; r < p.ranks; ++r) {
        const auto [w0, w1] = split.columns(r);
        items[static_cast<std::size_t>(r)] = ys[0] * (st.row_end - st.row_begin) * (w1 - w0);
      }
    } else {
      for (std::int64_t e = 0; e < np.output_ciphertexts; ++e) ++items[static_cast<std::size_t>(split.owner(e))];
    }
    for (const std::int64_t n : items) requests[k] += (n + np.round_items - 1) / np.round_items * np.rounds_per_chunk;
  }
  return requests;
}

std::string describe(const model::Graph& g, const Partition& p) {
  static const char* names[] = {"spatial", "inherit", "reduce", "root"};
  std::string out;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    out += g.nodes[k].name + ": " + names[static_cast<int>(p.nodes[k])] + "\n";
  }
  return out;
}

}  // namespace heinfer::plan
