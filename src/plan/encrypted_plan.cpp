#include "plan/encrypted_plan.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "ckks/sizes.h"
#include "model/analysis.h"
#include "model/error.h"
#include "model/liveness.h"
#include "model/window_indexer.h"
#include "plan/level_rules.h"
#include "plan/private_parameters.h"
#include "plan/private_schedule.h"

namespace heinfer::plan {
namespace {

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
    if (model::is_activation(g, t) && r.tensors[static_cast<std::size_t>(t)].*flag == value) return true;
  }
  return false;
}

std::vector<bool> streamable(const model::Graph& g, const LevelRules& r) {
  std::vector<bool> out(g.nodes.size(), false);
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    bool maps = true;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      if (model::is_activation(g, n.inputs[i])) maps = maps && row_map(g, n, i).has_value();
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

/// Linear and Square nodes: working set per output element (NodePlan::tile_element_bytes).
std::int64_t tile_element_bytes(const model::Graph& g, const model::Node& n, int input_level, std::size_t ring_degree) {
  std::int64_t in_elements = 0;
  for (model::TensorId t : n.inputs) {
    if (model::is_activation(g, t)) in_elements += elements(g, t);
  }
  const std::int64_t outs = std::max<std::int64_t>(1, elements(g, n.outputs[0]));
  const std::int64_t terms = std::max<std::int64_t>(1, model::macs(g, n) / outs);
  return ckks::ciphertext_bytes(ring_degree, input_level) * (1 + (in_elements + outs - 1) / outs) +
         terms * (16 + 8 * (input_level + 1)) + 256;
}

/// TensorPlan::aliases and ::readers. A data-movement node or fused Relu shares the
/// ciphertexts (and groups) of its inputs, so the readers of a group are the readers of
/// every tensor aliasing it.
void plan_store_groups(const model::Graph& g, EncryptedPlan& p) {
  for (model::TensorId t : g.inputs) p.tensors[static_cast<std::size_t>(t)].aliases = {t};
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    auto& out = p.tensors[static_cast<std::size_t>(n.outputs[0])].aliases;
    const bool shares = p.nodes[k].kind == NodeKind::DataMovement || p.nodes[k].kind == NodeKind::FusedRelu;
    out.clear();
    for (model::TensorId t : n.inputs) {
      if (!model::is_activation(g, t)) continue;
      for (model::TensorId r : p.tensors[static_cast<std::size_t>(t)].aliases) {
        auto& readers = p.tensors[static_cast<std::size_t>(r)].readers;
        if (readers.empty() || readers.back() != static_cast<std::int64_t>(k)) readers.push_back(static_cast<std::int64_t>(k));
        if (shares && std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
      }
    }
    out.push_back(n.outputs[0]);
  }
}

/// TensorPlan::max_inverse_factor and NodePlan::round_bound. Relu rounds divide pending
/// factors by their masks, MaxPool rounds start from one mask, data movement shares them,
/// everything else folds or recombines them.
void plan_round_bounds(const model::Graph& g, EncryptedPlan& p) {
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    const NodePlan& np = p.nodes[k];
    double in_inv = 1;
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      if (model::is_activation(g, n.inputs[i]) && !np.materialized[i]) {
        in_inv = std::max(in_inv, p.tensors[static_cast<std::size_t>(n.inputs[i])].max_inverse_factor);
      }
    }
    double& out = p.tensors[static_cast<std::size_t>(n.outputs[0])].max_inverse_factor;
    const bool per_sample = p.parameters.masks == RoundMasks::PerSample;
    switch (np.kind) {
      case NodeKind::Relu: out = in_inv * kMaskMax; break;
      case NodeKind::MaxPool: out = kMaskMax; break;
      case NodeKind::DataMovement:
      case NodeKind::FusedRelu: out = in_inv; break;
      case NodeKind::Clip:
      case NodeKind::LeakyRelu: out = np.identity ? in_inv : per_sample ? in_inv * kMaskMax : 1; break;
      default: out = 1; break;
    }
    if (!is_round(np.kind) || np.identity) continue;
    double shift = 0;  // Clip: relu(x - lo), relu(x - hi)
    if (const auto* c = std::get_if<model::ClipParams>(&n.params)) {
      if (std::isfinite(c->min)) shift = std::max(shift, std::fabs(c->min));
      if (std::isfinite(c->max)) shift = std::max(shift, std::fabs(c->max));
    }
    const model::TensorId x = model::first_activation_input(g, n);
    const double mask = np.kind == NodeKind::FunctionRound ? 1.0 : mask_max(p.parameters.masks);
    p.nodes[k].round_bound = (p.tensors[static_cast<std::size_t>(x)].bound + shift) * in_inv * mask;
  }
}

/// Per client round: items per message within half a tile of working set (an in-process
/// client holds its own copies of a round: decoded values, fresh ciphertexts), the level
/// and size of its windows, and whether a MaxPool applies a fused Relu.
void plan_round_sizes(const model::Graph& g, EncryptedPlan& p) {
  const int L = p.max_level;
  // The level each tensor's ciphertexts are held at once produced.
  std::vector<int> held_level(g.tensors.size(), -1);
  for (model::TensorId t : g.inputs) held_level[static_cast<std::size_t>(t)] = p.tensors[static_cast<std::size_t>(t)].stored_level;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) held_level[static_cast<std::size_t>(g.nodes[k].outputs[0])] = p.nodes[k].output_stored_level;
  const std::size_t n_ring = p.parameters.params.poly_modulus_degree();
  auto ct = [&](int lvl, bool compact = false) { return ckks::ciphertext_bytes(n_ring, lvl, compact); };
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    NodePlan& np = p.nodes[k];
    if (!is_round(np.kind) || np.identity) continue;
    const model::Node& n = g.nodes[k];
    const model::TensorId x = model::first_activation_input(g, n);
    // The level x is held at when the round reads it (brought to Δ first: one lower).
    const bool materialize = std::any_of(np.materialized.begin(), np.materialized.end(), [](bool b) { return b; });
    const int held = materialize ? np.input_level : held_level[static_cast<std::size_t>(x)];
    np.round_level = held;
    np.round_window_size = 1;
    if (np.kind == NodeKind::MaxPool) {
      for (std::int64_t kk : std::get<model::PoolParams>(n.params).kernel) np.round_window_size *= kk;
      for (std::size_t j = 0; j < g.nodes.size(); ++j) {  // its input's producer
        if (g.nodes[j].outputs[0] == x) np.round_fused_relu = p.nodes[j].kind == NodeKind::FusedRelu;
      }
    }
    // Per item: its masked windows (expanded, at the level read) twice and its compact
    // reply; Clip/LeakyRelu also hold the replies expanded and the recombined output.
    // Per-sample masks: per window also its slot factors (N/2 doubles), its replies
    // compact and expanded with their unmasking plaintexts, and the unmasked output.
    std::int64_t item_bytes = np.round_window_size * 2 * ct(held) + ct(L, true);
    if (p.parameters.masks == RoundMasks::PerSample && np.kind != NodeKind::FunctionRound) {
      const std::int64_t windows = np.round_replies / std::max<std::int64_t>(1, np.output_ciphertexts);
      const std::int64_t replies = np.round_signed_value ? 2 : 1;
      item_bytes = windows * (np.round_window_size * 2 * ct(held) + static_cast<std::int64_t>(n_ring / 2 * 8) +
                              replies * (ct(L, true) + ct(L) + ct(L) / 2)) + ct(L - 1);
    } else if (np.kind == NodeKind::Clip || np.kind == NodeKind::LeakyRelu) {
      const std::int64_t windows = np.round_replies / std::max<std::int64_t>(1, np.output_ciphertexts);
      item_bytes = windows * (2 * ct(held) + 3 * ct(L)) + 2 * ct(np.combine_level);
    }
    np.round_items = std::max<std::int64_t>(1, p.options.tile_bytes / 2 / std::max<std::int64_t>(1, item_bytes));
  }
}

/// NodePlan::rounds: per step of a round node, its items over the items per round.
void count_rounds(const model::Graph& g, EncryptedPlan& p) {
  for (const StreamStep& st : p.steps) {
    NodePlan& np = p.nodes[static_cast<std::size_t>(st.node)];
    if (np.round_items <= 0) continue;
    const model::Shape& ys = g.tensors[static_cast<std::size_t>(g.nodes[static_cast<std::size_t>(st.node)].outputs[0])].shape;
    const std::int64_t items = st.streamed ? ys[0] * (st.row_end - st.row_begin) * ys[2] : np.output_ciphertexts;
    np.rounds += (items + np.round_items - 1) / np.round_items * np.rounds_per_chunk;
  }
}

}  // namespace

std::vector<bool> streamable_nodes(const model::Graph& g) { return streamable(g, level_rules(g)); }

EncryptedPlan make_plan(const model::Graph& g, const Parameters& parameters, const ScheduleOptions& options) {
  if (parameters.bounds.size() != g.tensors.size()) {
    throw std::invalid_argument("the parameters were chosen for another graph (" +
                                std::to_string(parameters.bounds.size()) + " tensor bounds, the graph has " +
                                std::to_string(g.tensors.size()) + " tensors)");
  }
  const LevelRules rules = level_rules(g, parameters.masks, parameters.privacy);
  for (std::size_t k = 0; k < g.nodes.size() && !parameters.unmasked_functions; ++k) {
    if (rules.nodes[k].kind == NodeKind::FunctionRound) {
      throw model::ModelError(model::node_label(g.nodes[k]) +
                              ": in the client-aided mode the client would see this layer's inputs in the clear "
                              "(no multiplicative mask hides a function that is not positively homogeneous); "
                              "the server's operator must allow it with --allow-unmasked-rounds");
    }
  }
  EncryptedPlan p;
  if (parameters.privacy == Privacy::Model) {
    for (std::size_t k = 0; k < g.nodes.size(); ++k) {
      const NodeKind kind = rules.nodes[k].kind;
      if (kind == NodeKind::FunctionRound) {
        throw model::ModelError(model::node_label(g.nodes[k]) +
                                ": the model-private mode evaluates Relu, Clip, LeakyRelu and MaxPool on the "
                                "server; this layer is not evaluated homomorphically yet (use --privacy activations)");
      }
    }
    if (parameters.packing != ckks::Packing::Real || parameters.refresh_mask_bits <= 0) {
      throw std::invalid_argument("model-private parameters need real packing and refresh masks");
    }
    p.private_approximations = model_private_approximations(g, parameters.bounds, {parameters.relative_error, 1.0});
    p.refresh_floor = refresh_floor_level(parameters.params.coeff_bits(), parameters.refresh_mask_bits);
    if (p.refresh_floor < 0) throw std::invalid_argument("model-private parameters: no level carries the refresh masks");
  }
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
    np.deferred_product = nl.deferred_product;
    np.rescale_twice = nl.rescale_twice;
    np.materialized = nl.materialized;
    np.combines_input = nl.combines_input;
    np.combine_level = level(nl.combine_depth);
    np.identity = nl.identity;
    np.streamable = can_stream[k];
    np.free_after = free_after[k];
    const model::TensorId y = n.outputs[0];
    np.output_ciphertexts = nl.kind == NodeKind::FinalSoftmax ? 0 : elements(g, y);
    if (nl.kind == NodeKind::Linear || nl.kind == NodeKind::Square) {
      np.tile_element_bytes = tile_element_bytes(g, n, np.input_level, parameters.params.poly_modulus_degree());
      // Deferred products and the sums of their readers have three polynomials.
      if (np.deferred_product || np.rescale_twice) np.tile_element_bytes = np.tile_element_bytes * 3 / 2;
    }
    const model::TensorId x = model::first_activation_input(g, n);
    const bool per_sample = parameters.masks == RoundMasks::PerSample;
    switch (nl.kind) {
      case NodeKind::Relu:
        np.round_ciphertexts = np.round_replies = elements(g, x);
        np.round_signed_value = per_sample;
        break;
      case NodeKind::FunctionRound:
        np.round_ciphertexts = np.round_replies = elements(g, x);
        break;
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
        np.round_signed_value = per_sample && windows == 1;
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
  plan_store_groups(g, p);
  plan_round_bounds(g, p);
  plan_round_sizes(g, p);
  if (parameters.privacy == Privacy::Model) plan_private_rounds(g, p);
  // The schedule: bands of about tile_bytes / 8 of top-level ciphertexts.
  StreamOptions so;
  so.band_elements = std::max<std::int64_t>(1, options.tile_bytes / ckks::ciphertext_bytes(parameters.params.poly_modulus_degree(), L) / 8);
  p.band_elements = so.band_elements;
  so.segment_starts = options.segment_starts;
  p.steps = stream_schedule(g, options.streaming ? can_stream : std::vector<bool>(g.nodes.size(), false), so);
  p.inputs_on_demand = inputs_on_demand(g, p.steps);
  for (std::size_t i = 0; i < p.steps.size(); ++i) {  // TensorPlan::reading_steps
    for (model::TensorId t : g.nodes[static_cast<std::size_t>(p.steps[i].node)].inputs) {
      if (!model::is_activation(g, t)) continue;
      for (model::TensorId r : p.tensors[static_cast<std::size_t>(t)].aliases) {
        auto& steps = p.tensors[static_cast<std::size_t>(r)].reading_steps;
        if (steps.empty() || steps.back() != static_cast<std::int64_t>(i)) steps.push_back(static_cast<std::int64_t>(i));
      }
    }
  }
  count_rounds(g, p);
  return p;
}

std::int64_t next_reading_step(const EncryptedPlan& p, model::TensorId t, std::int64_t after) {
  const auto& steps = p.tensors[static_cast<std::size_t>(t)].reading_steps;
  const auto it = std::upper_bound(steps.begin(), steps.end(), after);
  return it == steps.end() ? std::numeric_limits<std::int64_t>::max() : *it;
}

std::int64_t step_position(const EncryptedPlan& p, const StreamStep& st) {
  const auto* first = p.steps.data();
  if (p.steps.empty() || &st < first || &st >= first + p.steps.size()) {
    throw std::logic_error("step_position: the step is not one of the plan's");
  }
  return &st - first;
}

}  // namespace heinfer::plan
