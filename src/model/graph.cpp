#include "model/graph.h"

#include <algorithm>

namespace heinfer::model {

std::string node_label(const Node& node) {
  return "node '" + node.name + "' (" + std::string(op_name(node.op)) + ")";
}

TensorId add_constant(Graph& g, std::string name, Shape shape, std::vector<double> data,
                      DataType dtype) {
  Tensor t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.is_constant = true;
  t.dtype = dtype;
  t.data = std::move(data);
  g.tensors.push_back(std::move(t));
  return static_cast<TensorId>(g.tensors.size() - 1);
}

TensorId add_activation(Graph& g, std::string name, Shape per_sample_shape) {
  Tensor t;
  t.name = std::move(name);
  t.shape = std::move(per_sample_shape);
  g.tensors.push_back(std::move(t));
  return static_cast<TensorId>(g.tensors.size() - 1);
}

std::vector<std::vector<int>> consumers(const Graph& g) {
  std::vector<std::vector<int>> c(g.tensors.size());
  for (std::size_t n = 0; n < g.nodes.size(); ++n) {
    for (TensorId t : g.nodes[n].inputs) {
      if (t == kNoTensor) continue;
      auto& list = c[static_cast<std::size_t>(t)];
      if (list.empty() || list.back() != static_cast<int>(n)) list.push_back(static_cast<int>(n));
    }
  }
  return c;
}

bool is_graph_output(const Graph& g, TensorId t) {
  return std::find(g.outputs.begin(), g.outputs.end(), t) != g.outputs.end();
}

void replace_uses(Graph& g, TensorId from, TensorId to) {
  for (Node& n : g.nodes) std::replace(n.inputs.begin(), n.inputs.end(), from, to);
  std::replace(g.outputs.begin(), g.outputs.end(), from, to);
}

bool is_activation(const Graph& g, TensorId t) {
  return t != kNoTensor && !g.tensors[static_cast<std::size_t>(t)].is_constant;
}

int activation_input_count(const Graph& g, const Node& node) {
  int count = 0;
  for (TensorId t : node.inputs) count += is_activation(g, t) ? 1 : 0;
  return count;
}

TensorId first_activation_input(const Graph& g, const Node& node) {
  for (TensorId t : node.inputs) {
    if (is_activation(g, t)) return t;
  }
  return kNoTensor;
}

}  // namespace heinfer::model
