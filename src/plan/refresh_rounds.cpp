#include "plan/refresh_rounds.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/error.h"
#include "plan/level_rules.h"

namespace heinfer::plan {
namespace {

int deepest(const LevelRules& r) {
  int d = 0;
  for (const NodeLevels& n : r.nodes) d = std::max({d, n.input_depth, n.output_depth});
  return d;
}

model::Node make_node(std::string name, model::OpType op, std::vector<model::TensorId> inputs,
                      model::TensorId output, model::OpParams params) {
  model::Node n;
  n.name = std::move(name);
  n.op = op;
  n.inputs = std::move(inputs);
  n.outputs = {output};
  n.params = std::move(params);
  return n;
}

/// Inserts `nodes` before node k and makes nodes k.. read `to` instead of `from`.
void insert_before(model::Graph& g, std::size_t k, model::TensorId from, model::TensorId to,
                   const std::vector<model::Node>& nodes) {
  for (std::size_t j = k; j < g.nodes.size(); ++j) {
    for (model::TensorId& in : g.nodes[j].inputs) {
      if (in == from) in = to;
    }
  }
  g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(k), nodes.begin(), nodes.end());
}

/// Inserts x = Relu(t) - Relu(-t) before node k and makes nodes k.. read it instead of t;
/// returns x.
model::TensorId refresh(model::Graph& g, std::size_t k, model::TensorId t, int index) {
  const model::Shape shape = g.tensors[static_cast<std::size_t>(t)].shape;
  const std::string base = "refresh_" + std::to_string(index) + "/" + g.tensors[static_cast<std::size_t>(t)].name;
  const model::Shape strides = model::row_major_strides(shape);
  const model::Shape scalar_strides(shape.size(), 0);
  const model::TensorId minus_one = model::add_constant(g, base + "/minus_one", {}, {-1.0});
  const model::TensorId pos = model::add_activation(g, base + "/relu", shape);
  const model::TensorId neg = model::add_activation(g, base + "/neg", shape);
  const model::TensorId neg_pos = model::add_activation(g, base + "/relu_neg", shape);
  const model::TensorId out = model::add_activation(g, base, shape);
  std::vector<model::Node> nodes;
  nodes.push_back(make_node(base + "/relu", model::OpType::Relu, {t}, pos, model::NoParams{}));
  nodes.push_back(make_node(base + "/neg", model::OpType::Mul, {t, minus_one}, neg,
                            model::BinaryParams{strides, scalar_strides}));
  nodes.push_back(make_node(base + "/relu_neg", model::OpType::Relu, {neg}, neg_pos, model::NoParams{}));
  nodes.push_back(make_node(base + "/sub", model::OpType::Sub, {pos, neg_pos}, out,
                            model::BinaryParams{strides, strides}));
  insert_before(g, k, t, out, nodes);
  return out;
}

/// Inserts y = Relu(t) before node k and makes nodes k.. read y instead of t.
void relu_refresh(model::Graph& g, std::size_t k, model::TensorId t, int index) {
  const model::Tensor& src = g.tensors[static_cast<std::size_t>(t)];
  const std::string name = src.name + "/refresh_" + std::to_string(index);
  const model::TensorId y = model::add_activation(g, name, src.shape);
  insert_before(g, k, t, y, {make_node(name, model::OpType::Relu, {t}, y, model::NoParams{})});
}

}  // namespace

std::vector<bool> nonnegative_tensors(const model::Graph& g) {
  using model::OpType;
  std::vector<bool> nonneg(g.tensors.size(), false);
  for (const model::Node& n : g.nodes) {
    if (n.outputs.size() != 1) continue;
    bool v = false;
    const model::TensorId x = n.inputs.empty() ? model::kNoTensor : n.inputs[0];
    const bool x_nonneg = x != model::kNoTensor && model::is_activation(g, x) && nonneg[static_cast<std::size_t>(x)];
    switch (n.op) {
      case OpType::Relu: v = true; break;
      case OpType::Clip: {
        const auto* c = std::get_if<model::ClipParams>(&n.params);
        v = (c && c->min >= 0) || x_nonneg;
        break;
      }
      case OpType::MaxPool:
      case OpType::AveragePool:
      case OpType::GlobalAveragePool: v = x_nonneg && n.inputs.size() == 1; break;
      default: v = is_relayout(n.op) && x_nonneg && n.inputs.size() == 1; break;
    }
    nonneg[static_cast<std::size_t>(n.outputs[0])] = v;
  }
  return nonneg;
}

int insert_nonnegative_refreshes(model::Graph& g, RoundMasks masks) {
  int inserted = 0;
  for (;;) {
    const LevelRules r = level_rules(g, masks);
    const int depth = deepest(r);
    // A refresh returns its tensor at the depth of a round's output: it lowers only tensors
    // deeper than that (never with per-sample masks on a node of depth 1 + 1).
    const int fresh = round_output_depth(masks);
    if (depth <= 1 + fresh) return inserted;
    const std::vector<bool> nonneg = nonnegative_tensors(g);
    // (node, tensor) pairs to refresh; empty when some node at `depth` cannot be helped.
    std::vector<std::pair<std::size_t, model::TensorId>> points;
    bool all = true;
    for (std::size_t k = 0; k < g.nodes.size() && all; ++k) {
      const NodeLevels& nl = r.nodes[k];
      if (std::max(nl.input_depth, nl.output_depth) < depth) continue;
      const model::Node& n = g.nodes[k];
      model::TensorId t = model::kNoTensor;
      int data_inputs = 0;
      for (model::TensorId in : n.inputs) {
        if (!model::is_activation(g, in)) continue;
        ++data_inputs;
        t = in;
      }
      const bool ok = nl.kind == NodeKind::Linear && data_inputs == 1 && nl.input_depth == depth - 1 &&
                      nl.output_depth == depth && r.tensors[static_cast<std::size_t>(t)].depth > fresh &&
                      nonneg[static_cast<std::size_t>(t)];
      if (!ok) all = false;
      else points.emplace_back(k, t);
    }
    if (!all || points.empty()) return inserted;
    // Later nodes first: the indices of earlier ones stay valid.
    for (auto it = points.rbegin(); it != points.rend(); ++it) relu_refresh(g, it->first, it->second, inserted++);
    if (deepest(level_rules(g, masks)) >= depth) {
      throw std::logic_error("insert_nonnegative_refreshes: a refresh did not lower the depth");
    }
  }
}

std::string RefreshPoints::describe() const {
  std::string s;
  if (two_round > 0) {
    s = std::to_string(two_round) + " refresh points (Relu(x) - Relu(-x), two masked rounds each) keep the chain within " +
        std::to_string(kRefreshDepth) + " levels";
  }
  if (nonnegative > 0) {
    s += (s.empty() ? "" : "; ") + std::to_string(nonnegative) +
         " refresh points (a masked Relu round on a non-negative tensor) save a level of every ciphertext";
  }
  return s;
}

namespace {

/// (ring elements per batch, stored words per coefficient) of the top level.
std::pair<std::int64_t, std::int64_t> batch_cost(const Parameters& p, int limb_words) {
  const auto bits = p.params.coeff_bits();
  std::int64_t words = 0;
  for (int b : bits) words += limb_words == 32 && b <= 32 ? 1 : 2;
  return {static_cast<std::int64_t>(p.params.poly_modulus_degree()) * static_cast<std::int64_t>(bits.size()),
          static_cast<std::int64_t>(p.params.poly_modulus_degree()) * words};
}

}  // namespace

Parameters plan_with_refreshes(model::Graph& g, const std::vector<double>& ranges, const ParameterOptions& o,
                               int limb_words, int* inserted) {
  if (inserted) *inserted = 0;
  if (deepest(level_rules(g, o.masks)) <= 1 + round_output_depth(o.masks)) {
    return plan_parameters(g, ranges, o);  // nothing to lower: no copy of the weights
  }
  model::Graph refreshed = g;
  const int count = insert_nonnegative_refreshes(refreshed, o.masks);
  if (count == 0) return plan_parameters(g, ranges, o);
  // The new tensors (appended) take their input's range: Relu is the identity there.
  std::vector<double> r = ranges;
  r.resize(refreshed.tensors.size(), 0.0);
  for (const model::Node& n : refreshed.nodes) {
    const auto out = static_cast<std::size_t>(n.outputs[0]);
    if (out >= ranges.size() && n.op == model::OpType::Relu) r[out] = r[static_cast<std::size_t>(n.inputs[0])];
  }
  std::optional<Parameters> without;
  try {
    without = plan_parameters(g, ranges, o);
  } catch (const std::invalid_argument&) {
  }
  Parameters with;
  try {
    with = plan_parameters(refreshed, r, o);
  } catch (const std::invalid_argument&) {
    if (without) return *without;
    throw;
  }
  if (without && batch_cost(*without, limb_words) <= batch_cost(with, limb_words)) return *without;
  g = std::move(refreshed);
  if (inserted) *inserted = count;
  return with;
}

RefreshPoints insert_refresh_rounds(model::Graph& g, RoundMasks masks) {
  RefreshPoints points;
  if (deepest(level_rules(g, masks)) <= kMaxDepthWithoutRefresh) return points;
  int& inserted = points.two_round;
  std::vector<model::TensorId> refreshed;
  for (;;) {
    const LevelRules r = level_rules(g, masks);
    std::size_t k = 0;
    while (k < g.nodes.size() && std::max(r.nodes[k].input_depth, r.nodes[k].output_depth) <= kRefreshDepth) ++k;
    if (k == g.nodes.size()) return points;
    // The deepest encrypted input of the first node past the budget.
    const model::Node& n = g.nodes[k];
    model::TensorId t = model::kNoTensor;
    int depth = 0;
    for (model::TensorId in : n.inputs) {
      if (!model::is_activation(g, in)) continue;
      const int d = r.tensors[static_cast<std::size_t>(in)].depth;
      if (t == model::kNoTensor || d > depth) {
        t = in;
        depth = d;
      }
    }
    if (t == model::kNoTensor || std::find(refreshed.begin(), refreshed.end(), t) != refreshed.end()) {
      throw model::ModelError(model::node_label(n) + ": needs more than " + std::to_string(kRefreshDepth) +
                              " levels even on freshly refreshed inputs");
    }
    refreshed.push_back(refresh(g, k, t, inserted++));
  }
}

}  // namespace heinfer::plan
