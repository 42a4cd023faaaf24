#include "plan/refresh_rounds.h"

#include <algorithm>
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
  for (std::size_t j = k; j < g.nodes.size(); ++j) {
    for (model::TensorId& in : g.nodes[j].inputs) {
      if (in == t) in = out;
    }
  }
  g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(k), nodes.begin(), nodes.end());
  return out;
}

}  // namespace

int insert_refresh_rounds(model::Graph& g, RoundMasks masks) {
  if (deepest(level_rules(g, masks)) <= kMaxDepthWithoutRefresh) return 0;
  int inserted = 0;
  std::vector<model::TensorId> refreshed;
  for (;;) {
    const LevelRules r = level_rules(g, masks);
    std::size_t k = 0;
    while (k < g.nodes.size() && std::max(r.nodes[k].input_depth, r.nodes[k].output_depth) <= kRefreshDepth) ++k;
    if (k == g.nodes.size()) return inserted;
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
