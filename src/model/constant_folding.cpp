#include "model/constant_folding.h"

#include "model/constant_eval.h"
#include "model/element_map.h"
#include "model/error.h"

namespace heinfer::model {

namespace {

void charge(Graph& g, std::int64_t elements, const Node& n) {
  g.load_time_elements += elements;
  if (g.load_time_elements > kMaxLoadTimeElements) {
    throw ModelError(node_label(n) + ": evaluating the model's constants at load time needs more than " +
                     std::to_string(kMaxLoadTimeElements) + " elements read and written (the limit of a load)");
  }
}

}  // namespace

void fold_node(Graph& g, const Node& n, bool shape_of_activation) {
  if (!shape_of_activation) {
    std::int64_t read = 0;
    for (TensorId t : n.inputs) {
      if (t != kNoTensor) read += static_cast<std::int64_t>(g.tensors[static_cast<std::size_t>(t)].data.size());
    }
    charge(g, read, n);
  }
  TensorValue v = shape_of_activation ? evaluate_shape_of_activation(g, n) : evaluate_constant_node(g, n);
  charge(g, static_cast<std::int64_t>(v.data.size()), n);
  Tensor& out = g.tensors[static_cast<std::size_t>(n.outputs[0])];
  out.is_constant = true;
  out.shape = std::move(v.dims);
  out.dtype = v.dtype;
  out.data = std::move(v.data);
  out.batch_coeff = std::move(v.batch_coeff);
}

int fold_constants(Graph& g) {
  const auto readers = consumers(g);
  std::vector<Node> kept;
  int folded = 0;
  for (Node& n : g.nodes) {
    bool all_constant = !n.inputs.empty();
    for (TensorId t : n.inputs) {
      if (t != kNoTensor && !g.tensors[static_cast<std::size_t>(t)].is_constant) all_constant = false;
    }
    if (!all_constant) {
      kept.push_back(std::move(n));
      continue;
    }
    for (std::size_t i = 1; i < n.outputs.size(); ++i) {
      const TensorId t = n.outputs[i];
      if (t != kNoTensor && (!readers[static_cast<std::size_t>(t)].empty() || is_graph_output(g, t))) {
        throw ModelError(node_label(n) + ": cannot fold a node whose output " + std::to_string(i) +
                         " is used");
      }
    }
    fold_node(g, n);
    ++folded;
  }
  g.nodes = std::move(kept);
  return folded;
}

}  // namespace heinfer::model
