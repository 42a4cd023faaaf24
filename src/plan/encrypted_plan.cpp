#include "plan/encrypted_plan.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>
#include <string>

#include "ckks/sizes.h"
#include "model/error.h"
#include "model/liveness.h"
#include "model/window_indexer.h"
#include "plan/level_rules.h"

namespace heinfer::plan {
namespace {

bool is_data(const model::Graph& g, model::TensorId t) {
  return t != model::kNoTensor && !g.tensors[static_cast<std::size_t>(t)].is_constant;
}

std::int64_t elements(const model::Graph& g, model::TensorId t) {
  return model::numel(g.tensors[static_cast<std::size_t>(t)].shape);
}

/// In-bounds window entries of a MaxPool over all its outputs (padding taps excluded).
std::int64_t max_pool_taps(const model::Graph& g, const model::Node& n, model::TensorId x) {
  const auto& p = std::get<model::PoolParams>(n.params);
  const model::Shape& xs = g.tensors[static_cast<std::size_t>(x)].shape;
  const model::WindowIndexer win(xs, g.tensors[static_cast<std::size_t>(n.outputs[0])].shape, p.kernel, p.strides,
                                 p.dilations, p.pads_begin, p.pads_end);
  std::int64_t taps = 0;
  for (std::int64_t os = 0; os < win.out_size; ++os) {
    std::array<std::int64_t, model::kMaxSpatialDims> base;
    win.origin(os, base);
    for (std::int64_t kp = 0; kp < win.kernel_size; ++kp) taps += win.input_offset(base, kp) >= 0;
  }
  return taps * xs[0];
}

/// Whether an input of node n (per the rules) has a scale other than Δ / pending factors.
bool any_input(const model::Graph& g, const model::Node& n, const LevelRules& r, bool TensorState::*flag, bool value) {
  for (model::TensorId t : n.inputs) {
    if (is_data(g, t) && r.tensors[static_cast<std::size_t>(t)].*flag == value) return true;
  }
  return false;
}

std::vector<bool> streamable(const model::Graph& g, const LevelRules& r) {
  std::vector<bool> out(g.nodes.size(), false);
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    bool maps = true;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      if (is_data(g, n.inputs[i])) maps = maps && row_map(g, n, i).has_value();
    }
    const bool off_scale = any_input(g, n, r, &TensorState::at_delta, false);
    const bool factors = any_input(g, n, r, &TensorState::factors, true);
    switch (r.nodes[k].kind) {
      case NodeKind::Linear:
      case NodeKind::Clip:
      case NodeKind::LeakyRelu:
      case NodeKind::Relu:
      case NodeKind::FusedRelu: out[k] = maps && !off_scale; break;
      case NodeKind::MaxPool: out[k] = maps && !off_scale && !factors; break;
      default: break;
    }
  }
  return out;
}

}  // namespace

std::vector<bool> streamable_nodes(const model::Graph& g) { return streamable(g, level_rules(g)); }

EncryptedPlan make_plan(const model::Graph& g, const Parameters& parameters, const ScheduleOptions& options) {
  if (parameters.bounds.size() != g.tensors.size()) {
    throw std::invalid_argument("the parameters were chosen for another graph (" +
                                std::to_string(parameters.bounds.size()) + " tensor bounds, the graph has " +
                                std::to_string(g.tensors.size()) + " tensors)");
  }
  const LevelRules rules = level_rules(g);
  EncryptedPlan p;
  p.parameters = parameters;
  p.options = options;
  p.max_level = static_cast<int>(parameters.params.coeff_bits().size()) - 1;
  const int L = p.max_level;
  auto level = [&](int depth) { return depth < 0 ? -1 : L - depth; };
  p.tensors.resize(g.tensors.size());
  for (std::size_t t = 0; t < g.tensors.size(); ++t) {
    TensorPlan& tp = p.tensors[t];
    tp.bound = parameters.bounds[t];
    if (g.tensors[t].is_constant) continue;
    const TensorState& s = rules.tensors[t];
    tp.level = tp.stored_level = level(s.depth);
    tp.factors = s.factors;
    tp.at_delta = s.at_delta;
  }
  const auto free_after = model::activations_to_free(g);
  const auto can_stream = streamable(g, rules);
  p.nodes.resize(g.nodes.size());
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    const NodeLevels& nl = rules.nodes[k];
    NodePlan& np = p.nodes[k];
    np.kind = nl.kind;
    np.input_level = level(nl.input_depth);
    np.output_level = level(nl.output_depth);
    // Every rescale, square and materialization adds one depth: a level below 0 is a
    // rescale the chain cannot pay for.
    if (np.input_level < 0 || (nl.output_depth >= 0 && np.output_level < 0)) {
      throw std::invalid_argument(model::node_label(n) + ": out of levels (the parameters have " + std::to_string(L) +
                                  " levels, the model needs " + std::to_string(parameters.needs.levels) + ")");
    }
    np.rescale = nl.rescale;
    np.materialized = nl.materialized;
    np.combines_input = nl.combines_input;
    np.combine_level = level(nl.combine_depth);
    np.identity = nl.identity;
    np.streamable = can_stream[k];
    np.free_after = free_after[k];
    const model::TensorId y = n.outputs[0];
    np.output_ciphertexts = nl.kind == NodeKind::FinalSoftmax ? 0 : elements(g, y);
    model::TensorId x = model::kNoTensor;
    for (model::TensorId t : n.inputs) {
      if (is_data(g, t)) {
        x = t;
        break;
      }
    }
    switch (nl.kind) {
      case NodeKind::Relu: np.round_ciphertexts = np.round_replies = elements(g, x); break;
      case NodeKind::MaxPool:
        np.round_ciphertexts = max_pool_taps(g, n, x);
        np.round_replies = elements(g, y);
        break;
      case NodeKind::Clip:
      case NodeKind::LeakyRelu: {
        if (nl.identity) break;
        std::int64_t windows = 1;  // LeakyRelu: relu(x); Clip: one per finite bound
        if (const auto* c = std::get_if<model::ClipParams>(&n.params)) {
          windows = (std::isfinite(c->min) ? 1 : 0) + (std::isfinite(c->max) ? 1 : 0);
        }
        np.round_ciphertexts = np.round_replies = windows * elements(g, y);
        break;
      }
      default: break;
    }
  }
  // Stored levels: the highest level a reader reads the tensor at, where every reader
  // reads it at its input level (linear nodes and squares that bring no input to Δ, Relu
  // rounds, the final Softmax); graph outputs keep their level.
  const auto readers = model::consumers(g);
  for (std::size_t t = 0; t < g.tensors.size(); ++t) {
    if (readers[t].empty() || g.tensors[t].is_constant || model::is_graph_output(g, static_cast<model::TensorId>(t))) {
      continue;
    }
    int needed = -1;
    bool ok = true;
    for (int k : readers[t]) {
      const NodePlan& r = p.nodes[static_cast<std::size_t>(k)];
      const bool aligned = std::none_of(r.materialized.begin(), r.materialized.end(), [](bool b) { return b; }) &&
                           !any_input(g, g.nodes[static_cast<std::size_t>(k)], rules, &TensorState::at_delta, false);
      ok = ok && (((r.kind == NodeKind::Linear || r.kind == NodeKind::Square) && aligned) ||
                  r.kind == NodeKind::Relu || r.kind == NodeKind::FinalSoftmax);
      needed = std::max(needed, r.input_level);
    }
    if (ok && needed >= 0) p.tensors[t].stored_level = std::min(p.tensors[t].level, needed);
  }
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    NodePlan& np = p.nodes[k];
    const bool shares = np.kind == NodeKind::DataMovement || np.kind == NodeKind::FusedRelu || np.kind == NodeKind::FinalSoftmax;
    const int stored = p.tensors[static_cast<std::size_t>(g.nodes[k].outputs[0])].stored_level;
    np.output_stored_level = shares ? np.output_level : std::min(np.output_level, stored);
  }
  // The schedule: bands of about tile_bytes / 8 of top-level ciphertexts.
  StreamOptions so;
  so.band_elements = std::max<std::int64_t>(1, options.tile_bytes / ckks::ciphertext_bytes(parameters.params.poly_modulus_degree(), L) / 8);
  p.band_elements = so.band_elements;
  p.steps = stream_schedule(g, options.streaming ? can_stream : std::vector<bool>(g.nodes.size(), false), so);
  p.inputs_on_demand = inputs_on_demand(g, p.steps);
  return p;
}

}  // namespace heinfer::plan
