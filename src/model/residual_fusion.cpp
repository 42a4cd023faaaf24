#include "model/residual_fusion.h"

#include "model/analysis.h"
#include "model/identity_removal.h"

namespace heinfer::model {

int fuse_residual_adds(Graph& g) {
  std::vector<int> producer(g.tensors.size(), -1);
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    for (TensorId t : g.nodes[i].outputs) producer[static_cast<std::size_t>(t)] = static_cast<int>(i);
  }
  const auto readers = consumers(g);
  auto shape = [&](TensorId t) -> const Shape& { return g.tensors[static_cast<std::size_t>(t)].shape; };
  int fused = 0;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& add = g.nodes[i];
    if (add.op != OpType::Add || add.inputs.size() != 2 || add.outputs.size() != 1) continue;
    for (int side = 0; side < 2; ++side) {
      const TensorId a = add.inputs[static_cast<std::size_t>(side)];
      const TensorId z = add.inputs[static_cast<std::size_t>(1 - side)];
      if (a == z || !is_activation(g, a) || !is_activation(g, z)) continue;
      const int ci = producer[static_cast<std::size_t>(a)];
      const int zi = producer[static_cast<std::size_t>(z)];
      if (ci < 0 || zi < 0) continue;
      const Node& conv = g.nodes[static_cast<std::size_t>(ci)];
      const auto* cp = std::get_if<ConvParams>(&conv.params);
      if (conv.op != OpType::Conv || !cp || cp->residual) continue;
      if (readers[static_cast<std::size_t>(a)].size() != 1 || is_graph_output(g, a)) continue;
      if (shape(a) != shape(add.outputs[0]) || shape(z) != shape(add.outputs[0])) continue;
      if (classify(g.nodes[static_cast<std::size_t>(zi)]) != OpClass::ClientAided) continue;
      Node f = conv;
      f.inputs.resize(3, kNoTensor);
      f.inputs.push_back(z);
      f.outputs = add.outputs;
      std::get<ConvParams>(f.params).residual = true;
      g.nodes[i] = std::move(f);  // the Conv it came from is left unread
      ++fused;
      break;
    }
  }
  if (fused > 0) remove_dead_nodes(g);
  return fused;
}

}  // namespace heinfer::model
