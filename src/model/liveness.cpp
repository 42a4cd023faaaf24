#include "model/liveness.h"

#include <algorithm>

namespace heinfer::model {

std::vector<int> last_use(const Graph& g) {
  std::vector<int> last(g.tensors.size(), -1);
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    for (TensorId t : g.nodes[i].inputs) {
      if (t != kNoTensor) last[static_cast<std::size_t>(t)] = static_cast<int>(i);
    }
  }
  for (TensorId t : g.outputs) last[static_cast<std::size_t>(t)] = static_cast<int>(g.nodes.size());
  return last;
}

std::vector<std::vector<TensorId>> activations_to_free(const Graph& g) {
  const std::vector<int> last = last_use(g);
  std::vector<std::vector<TensorId>> free_after(g.nodes.size());
  for (std::size_t t = 0; t < g.tensors.size(); ++t) {
    const int l = last[t];
    if (g.tensors[t].is_constant || l < 0 || l >= static_cast<int>(g.nodes.size())) continue;
    free_after[static_cast<std::size_t>(l)].push_back(static_cast<TensorId>(t));
  }
  return free_after;
}

std::int64_t peak_live_elements(const Graph& g) {
  const auto free_after = activations_to_free(g);
  std::int64_t live = 0, peak = 0;
  for (TensorId t : g.inputs) live += numel(g.tensors[static_cast<std::size_t>(t)].shape);
  peak = live;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    live += numel(g.tensors[static_cast<std::size_t>(g.nodes[i].outputs[0])].shape);
    peak = std::max(peak, live);
    for (TensorId t : free_after[i]) live -= numel(g.tensors[static_cast<std::size_t>(t)].shape);
  }
  return peak;
}

}  // namespace heinfer::model
