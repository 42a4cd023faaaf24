#include "model/identity_removal.h"

#include <algorithm>

namespace heinfer::model {

int remove_identities(Graph& g) {
  std::vector<Node> kept;
  int removed = 0;
  for (Node& n : g.nodes) {
    if ((n.op == OpType::Identity || n.op == OpType::Dropout) && !n.inputs.empty() &&
        n.inputs[0] != kNoTensor) {
      replace_uses(g, n.outputs[0], n.inputs[0]);
      for (Node& k : kept) std::replace(k.inputs.begin(), k.inputs.end(), n.outputs[0], n.inputs[0]);
      ++removed;
      continue;
    }
    kept.push_back(std::move(n));
  }
  g.nodes = std::move(kept);
  return removed;
}

int remove_dead_nodes(Graph& g) {
  int removed = 0;
  for (bool changed = true; changed;) {
    changed = false;
    const auto readers = consumers(g);
    std::vector<Node> kept;
    for (Node& n : g.nodes) {
      bool used = false;
      for (TensorId t : n.outputs) {
        if (t != kNoTensor && (!readers[static_cast<std::size_t>(t)].empty() || is_graph_output(g, t))) {
          used = true;
        }
      }
      if (used) {
        kept.push_back(std::move(n));
      } else {
        ++removed;
        changed = true;
      }
    }
    g.nodes = std::move(kept);
  }
  return removed;
}

}  // namespace heinfer::model
