#include "model/batchnorm_folding.h"

namespace heinfer::model {
namespace {

/// The output-channel count of a foldable producer, or 0 when it cannot absorb a BN.
std::int64_t producer_channels(const Graph& g, const Node& p) {
  if (p.op == OpType::Conv) {
    return g.tensors[static_cast<std::size_t>(p.inputs[1])].shape[0];
  }
  if (const auto* gp = std::get_if<GemmParams>(&p.params); gp && gp->outer == 1) return gp->n;
  return 0;
}

}  // namespace

int fold_batchnorm(Graph& g) {
  std::vector<int> producer(g.tensors.size(), -1);
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    for (TensorId t : g.nodes[i].outputs) producer[static_cast<std::size_t>(t)] = static_cast<int>(i);
  }
  const auto readers = consumers(g);
  std::vector<bool> erase(g.nodes.size(), false);
  int folded = 0;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& bn = g.nodes[i];
    const auto* bp = std::get_if<BatchNormParams>(&bn.params);
    if (!bp) continue;
    const TensorId x = bn.inputs[0];
    const int pi = producer[static_cast<std::size_t>(x)];
    if (pi < 0 || readers[static_cast<std::size_t>(x)].size() != 1 || is_graph_output(g, x)) continue;
    Node& p = g.nodes[static_cast<std::size_t>(pi)];
    const std::int64_t m = producer_channels(g, p);
    if (m == 0 || m != bp->channels) continue;

    const std::vector<double> scale = g.tensors[static_cast<std::size_t>(bn.inputs[1])].data;
    const std::vector<double> shift = g.tensors[static_cast<std::size_t>(bn.inputs[2])].data;
    const Tensor& w = g.tensors[static_cast<std::size_t>(p.inputs[1])];
    std::vector<double> wd = w.data;
    const Shape ws = w.shape;
    const std::size_t per_channel = wd.size() / static_cast<std::size_t>(m);
    for (std::size_t c = 0; c < static_cast<std::size_t>(m); ++c) {
      for (std::size_t j = 0; j < per_channel; ++j) wd[c * per_channel + j] *= scale[c];
    }
    std::vector<double> bias = shift;
    if (p.inputs.size() > 2 && p.inputs[2] != kNoTensor) {
      const auto& b = g.tensors[static_cast<std::size_t>(p.inputs[2])].data;
      for (std::size_t c = 0; c < bias.size(); ++c) bias[c] += scale[c] * b[c];
    }
    p.inputs.resize(3, kNoTensor);
    p.inputs[1] = add_constant(g, p.name + ".weight_bn", ws, std::move(wd));
    p.inputs[2] = add_constant(g, p.name + ".bias_bn", {m}, std::move(bias));
    p.outputs[0] = g.nodes[i].outputs[0];
    producer[static_cast<std::size_t>(p.outputs[0])] = pi;
    erase[i] = true;
    ++folded;
  }
  std::vector<Node> kept;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (!erase[i]) kept.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(kept);
  return folded;
}

}  // namespace heinfer::model
