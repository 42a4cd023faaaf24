#include "plan/level_rules.h"

#include <algorithm>
#include <cmath>

#include "model/analysis.h"
#include "model/error.h"
#include "model/shape.h"

namespace heinfer::plan {

namespace {

std::size_t activation_inputs(const model::Graph& g, const model::Node& n) {
  std::size_t c = 0;
  for (model::TensorId t : n.inputs) c += model::is_activation(g, t) ? 1 : 0;
  return c;
}

// Whether tensor t is read only by linear nodes with one encrypted input that rescale
// anyway, directly or through relayouts with one input; adds their output elements.
bool read_by_linear_only(const model::Graph& g, const std::vector<std::vector<int>>& readers, model::TensorId t,
                         std::int64_t& outputs) {
  const auto& rs = readers[static_cast<std::size_t>(t)];
  if (rs.empty() || model::is_graph_output(g, t)) return false;
  for (int k : rs) {
    const model::Node& r = g.nodes[static_cast<std::size_t>(k)];
    if (activation_inputs(g, r) != 1) return false;
    const NodeKind kind = node_kind(g, r);
    if (kind == NodeKind::DataMovement) {
      // Only relayouts: Pad, Concat, Resize and the like can add constant ciphertexts
      // (two polynomials) beside the products.
      if (!is_relayout(r.op) || !read_by_linear_only(g, readers, r.outputs[0], outputs)) return false;
    } else if (kind == NodeKind::Linear && model::levels(g, r) > 0) {
      outputs += model::numel(g.tensors[static_cast<std::size_t>(r.outputs[0])].shape);
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

LevelRules level_rules(const model::Graph& g, RoundMasks masks, Privacy privacy) {
  const bool per_sample = masks == RoundMasks::PerSample;
  const int fresh = round_output_depth(masks);
  const auto readers = model::consumers(g);
  LevelRules r;
  r.tensors.resize(g.tensors.size());
  r.nodes.resize(g.nodes.size());
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    NodeLevels& nl = r.nodes[k];
    nl.kind = node_kind(g, n);
    nl.materialized.assign(n.inputs.size(), false);
    std::vector<std::size_t> data;  // indices into n.inputs
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      if (model::is_activation(g, n.inputs[i])) data.push_back(i);
    }
    if (data.empty()) throw model::ModelError(model::node_label(n) + ": no encrypted input");
    auto state = [&](std::size_t i) { return r.tensors[static_cast<std::size_t>(n.inputs[i])]; };
    const TensorState x = state(data[0]);
    TensorState y;
    switch (nl.kind) {
      case NodeKind::DataMovement:
      case NodeKind::Linear:
      case NodeKind::Square: {
        // Several inputs must share a scale: those not at Δ are brought to Δ first.
        bool mixed = false;
        for (std::size_t i : data) mixed = mixed || !state(i).at_delta;
        mixed = mixed && data.size() > 1;
        TensorState in;
        for (std::size_t i : data) {
          TensorState s = state(i);
          if (mixed && !s.at_delta) {
            nl.materialized[i] = true;
            s = {s.depth + 1, false, true};
          }
          in.depth = std::max(in.depth, s.depth);
          in.factors = in.factors || s.factors;
          in.at_delta = in.at_delta && s.at_delta;
          in.product = in.product || s.product;
        }
        nl.input_depth = in.depth;
        if (nl.kind == NodeKind::DataMovement) {
          y = in;
        } else if (nl.kind == NodeKind::Square) {
          std::int64_t outputs = 0;
          const model::TensorId out = n.outputs[0];
          nl.deferred_product = read_by_linear_only(g, readers, out, outputs) &&
                                2 * outputs <= model::numel(g.tensors[static_cast<std::size_t>(out)].shape);
          y = {in.depth + (nl.deferred_product ? 0 : 1), in.factors, false, nl.deferred_product};
        } else if (in.product) {
          nl.rescale = nl.rescale_twice = true;
          y = {in.depth + 2, false, true};
        } else {
          nl.rescale = model::levels(g, n) > 0 || in.factors;
          y = {in.depth + (nl.rescale ? 1 : 0), false, nl.rescale || in.at_delta};
        }
        break;
      }
      case NodeKind::FusedRelu:
        nl.input_depth = x.depth;
        y = x;
        break;
      case NodeKind::Relu:
        nl.input_depth = x.depth;
        nl.rescale = per_sample;
        y = {fresh, true, true};
        break;
      case NodeKind::MaxPool:
        nl.materialized[data[0]] = x.factors;
        nl.input_depth = x.depth + (x.factors ? 1 : 0);
        nl.rescale = per_sample;
        y = {fresh, true, true};
        break;
      case NodeKind::Clip:
      case NodeKind::LeakyRelu: {
        nl.materialized[data[0]] = !x.at_delta;
        nl.input_depth = x.depth + (x.at_delta ? 0 : 1);
        double lo = -INFINITY;
        if (const auto* c = std::get_if<model::ClipParams>(&n.params)) {
          lo = c->min;
          nl.identity = std::isinf(c->min) && std::isinf(c->max);
        }
        if (nl.identity) {
          y = x.at_delta ? x : TensorState{nl.input_depth, false, true};
          break;
        }
        if (privacy == Privacy::Model) {  // on the server, from x and its factors, then refreshed
          nl.materialized[data[0]] = false;
          nl.input_depth = x.depth;
          y = {fresh, true, true};
          break;
        }
        if (per_sample) {  // windows of x at any scale; the fresh replies are recombined
          nl.materialized[data[0]] = false;
          nl.input_depth = x.depth;
          nl.rescale = true;
          y = {fresh, true, true};
          break;
        }
        const bool uses_x = nl.kind == NodeKind::LeakyRelu || std::isinf(lo);
        nl.rescale = true;
        nl.combines_input = uses_x;
        nl.combine_depth = uses_x ? nl.input_depth : 0;
        y = {nl.combine_depth + 1, false, true};
        break;
      }
      case NodeKind::FunctionRound:
        // No mask: pending factors are applied first; the replies are fresh at Δ.
        nl.materialized[data[0]] = x.factors;
        nl.input_depth = x.depth + (x.factors ? 1 : 0);
        y = {0, false, true};
        break;
      case NodeKind::FinalSoftmax:
        nl.input_depth = x.depth;
        y = {-1, false, true};
        break;
    }
    nl.output_depth = y.depth;
    r.tensors[static_cast<std::size_t>(n.outputs[0])] = y;
  }
  return r;
}

}  // namespace heinfer::plan
