#include "memory/footprint.h"

#include <algorithm>
#include <cmath>
#include <variant>

#include "model/analysis.h"
#include "model/error.h"
#include "model/liveness.h"
#include "runtime/kernels/window.h"
#include "runtime/stream_schedule.h"

namespace heinfer::memory {
namespace {

using model::OpType;
using model::TensorId;
using runtime::EncryptedNodeKind;

/// Level state of one activation, as the executor tracks it (EncryptedTensor).
struct Value {
  int level = -1;
  bool factor = false;   ///< pending unmasking factors
  bool delta = true;     ///< scale is Δ (false after a square)
  bool fresh = false;    ///< client-refreshed (compact until read when compact_fresh)
  std::vector<int> storages;  ///< the ciphertext storages this tensor points into
};

/// A set of ciphertexts created together (shared by data-movement aliases).
struct Storage {
  std::int64_t count = 0;
  int level = 0;        ///< level at creation
  bool fresh = false;
  int stored_level = 0; ///< level while stored (lowest needed level, or `level`)
  int refs = 0;         ///< live tensors pointing into it
};

bool is_data(const model::Graph& g, TensorId t) {
  return t != model::kNoTensor && !g.tensors[static_cast<std::size_t>(t)].is_constant;
}

std::int64_t elems(const model::Graph& g, TensorId t) {
  return model::numel(g.tensors[static_cast<std::size_t>(t)].shape);
}

/// Fraction of nonzero values of constant input i (1 when absent).
double nonzero_fraction(const model::Graph& g, const model::Node& n, std::size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == model::kNoTensor) return 1.0;
  const auto& d = g.tensors[static_cast<std::size_t>(n.inputs[i])].data;
  if (d.empty()) return 1.0;
  const auto nz = std::count_if(d.begin(), d.end(), [](double v) { return v != 0.0; });
  return static_cast<double>(nz) / static_cast<double>(d.size());
}

/// Multiply-accumulate terms of a linear node over all outputs (per sample = per batch
/// under batch-axis packing): model::macs scaled by the nonzero fraction of the weights;
/// additions of two tensors and of a constant count one term per input element read.
std::int64_t linear_terms(const model::Graph& g, const model::Node& n) {
  const std::int64_t out = elems(g, n.outputs[0]);
  switch (n.op) {
    case OpType::Conv:
    case OpType::Gemm:
    case OpType::MatMul:
      return std::llround(static_cast<double>(model::macs(g, n)) * nonzero_fraction(g, n, 1));
    case OpType::BatchNormalization:
      return std::llround(static_cast<double>(out) * nonzero_fraction(g, n, 1));
    case OpType::Mul:
    case OpType::Div: {
      for (std::size_t i = 0; i < n.inputs.size(); ++i) {
        if (!is_data(g, n.inputs[i]) && n.inputs[i] != model::kNoTensor) {
          return std::llround(static_cast<double>(out) * nonzero_fraction(g, n, i));
        }
      }
      return out;
    }
    case OpType::Add:
    case OpType::Sub: return out * model::activation_input_count(g, n);
    case OpType::AveragePool:
    case OpType::GlobalAveragePool: return model::macs(g, n);
    default: return out;
  }
}

/// The working set of a node (or of a band of it) beyond its final outputs: `expand`
/// (compact inputs expanded) + `rest`, capped at tile_bytes when the executor tiles it;
/// a tiled linear node / square has the store expand its compact inputs once for all
/// tiles (CiphertextStore::expand), so those stay whole.
std::int64_t capped_working(EncryptedNodeKind kind, std::int64_t expand, std::int64_t rest, const FootprintOptions& o) {
  std::int64_t working = expand + rest;
  if (o.tile_bytes <= 0 || working <= o.tile_bytes) return working;
  std::int64_t whole = 0;
  if (kind == EncryptedNodeKind::Linear || kind == EncryptedNodeKind::Square) {
    whole = expand;
    working -= expand;
  }
  return whole + std::min(working, o.tile_bytes);
}

}  // namespace

std::int64_t ciphertext_bytes(std::size_t n, int level, bool compact) {
  if (level < 0) return 0;
  return (compact ? 1 : 2) * static_cast<std::int64_t>(level + 1) * static_cast<std::int64_t>(n) * 8;
}

std::int64_t evaluation_key_bytes(const runtime::EncryptionPlan& plan) {
  const auto& p = plan.params;
  const auto chain = static_cast<std::int64_t>(p.coeff_bits().size());
  const auto special = static_cast<std::int64_t>(p.special_bits().size());
  const std::int64_t digits = (chain + special - 1) / special;
  const std::int64_t one = digits * 2 * (chain + special) * static_cast<std::int64_t>(p.poly_modulus_degree()) * 8;
  return plan.packing == runtime::Packing::Complex ? 2 * one : one;
}

FootprintEstimate predict_footprint(const model::Graph& g, const runtime::EncryptionPlan& plan) {
  return predict_footprint(g, plan, FootprintOptions{});
}

FootprintEstimate predict_footprint(const model::Graph& g, const runtime::EncryptionPlan& plan,
                                    const FootprintOptions& o) {
  FootprintEstimate est;
  const std::size_t N = plan.params.poly_modulus_degree();
  const int L = static_cast<int>(plan.params.coeff_bits().size()) - 1;
  est.n = N;
  est.max_level = L;
  est.key_bytes = evaluation_key_bytes(plan);
  {  // constants some node reads (import may leave unused originals behind)
    std::vector<bool> counted(g.tensors.size(), false);
    for (const auto& n : g.nodes) {
      for (TensorId t : n.inputs) {
        if (t == model::kNoTensor || counted[static_cast<std::size_t>(t)]) continue;
        const auto& c = g.tensors[static_cast<std::size_t>(t)];
        if (!c.is_constant) continue;
        counted[static_cast<std::size_t>(t)] = true;
        est.weight_bytes += static_cast<std::int64_t>(c.data.size()) * 8;
      }
    }
  }
  auto ct = [&](int level, bool compact = false) { return ciphertext_bytes(N, level, compact); };

  std::vector<EncryptedNodeKind> kinds;
  for (const auto& n : g.nodes) kinds.push_back(runtime::encrypted_node_kind(g, n));

  // ---- pass 1: levels, storages and the work of every node ----
  std::vector<Value> val(g.tensors.size());
  std::vector<Storage> st;
  auto new_storage = [&](std::int64_t count, int level, bool fresh) {
    st.push_back({count, level, fresh, level, 0});
    return static_cast<int>(st.size()) - 1;
  };
  for (TensorId t : g.inputs) {
    auto& v = val[static_cast<std::size_t>(t)];
    v.level = L;
    v.fresh = true;
    v.storages = {new_storage(elems(g, t), L, true)};
    est.input_ciphertexts += elems(g, t);
  }
  // Per node: the storage the node creates (-1: none), consumption level of each storage.
  std::vector<int> created(g.nodes.size(), -1);
  std::vector<std::vector<std::pair<int, int>>> reads(g.nodes.size());  // (storage, level read at)
  est.nodes.resize(g.nodes.size());
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    NodeFootprint& nf = est.nodes[k];
    nf.kind = kinds[k];
    const TensorId out = n.outputs[0];
    const std::int64_t out_count = elems(g, out);
    std::vector<TensorId> data;
    for (TensorId t : n.inputs) {
      if (is_data(g, t)) data.push_back(t);
    }
    if (data.empty()) throw model::ModelError(model::node_label(n) + ": no encrypted input");
    const Value& x = val[static_cast<std::size_t>(data[0])];
    Value y;
    auto record_reads = [&](const Value& v, int level) {
      for (int s : v.storages) reads[k].emplace_back(s, level);
    };
    switch (kinds[k]) {
      case EncryptedNodeKind::DataMovement:
      case EncryptedNodeKind::Linear:
      case EncryptedNodeKind::Square: {
        // Mixed scales: non-Δ inputs are first brought to Δ (one level each).
        std::vector<int> levels;
        bool mixed = false, factors = false, delta = true;
        for (TensorId t : data) mixed = mixed || !val[static_cast<std::size_t>(t)].delta;
        mixed = mixed && data.size() > 1;
        for (TensorId t : data) {
          const Value& v = val[static_cast<std::size_t>(t)];
          int l = v.level;
          if (mixed && !v.delta) {
            l -= 1;
            nf.materialized += elems(g, t);
          } else {
            factors = factors || v.factor;
            delta = delta && v.delta;
          }
          levels.push_back(l);
        }
        const int level = *std::min_element(levels.begin(), levels.end());
        nf.input_level = level;
        for (std::size_t i = 0; i < data.size(); ++i) {
          const Value& v = val[static_cast<std::size_t>(data[i])];
          record_reads(v, mixed && !v.delta ? v.level : level);
          if (levels[i] != level) nf.aligned += elems(g, data[i]);
        }
        if (kinds[k] == EncryptedNodeKind::DataMovement) {
          y.level = level;
          y.factor = factors;
          y.delta = delta;
          for (std::size_t i = 0; i < data.size(); ++i) {
            const Value& v = val[static_cast<std::size_t>(data[i])];
            if (levels[i] != level || (mixed && !v.delta)) {
              y.storages.push_back(new_storage(elems(g, data[i]), level, false));  // aligned copy
            } else {
              y.storages.insert(y.storages.end(), v.storages.begin(), v.storages.end());
              y.fresh = y.fresh || v.fresh;
            }
          }
          if (y.storages.size() == 1 && st[static_cast<std::size_t>(y.storages[0])].fresh) y.fresh = true;
        } else if (kinds[k] == EncryptedNodeKind::Square) {
          y.level = level - 1;
          y.factor = factors;
          y.delta = false;
          nf.squares = out_count;
          created[k] = new_storage(out_count, y.level, false);
          y.storages = {created[k]};
        } else {
          nf.rescale = model::levels(g, n) > 0 || factors;
          y.level = nf.rescale ? level - 1 : level;
          y.delta = nf.rescale || delta;
          const std::int64_t terms = linear_terms(g, n);
          if (nf.rescale) nf.mac_terms = terms;
          else nf.additions = terms;
          created[k] = new_storage(out_count, y.level, false);
          y.storages = {created[k]};
        }
        break;
      }
      case EncryptedNodeKind::FusedRelu:
        y = x;
        nf.input_level = x.level;
        record_reads(x, x.level);
        break;
      case EncryptedNodeKind::Relu:
        nf.input_level = x.level;
        record_reads(x, x.level);
        nf.round_ciphertexts = nf.round_replies = elems(g, data[0]);
        y.level = L;
        y.factor = true;
        y.fresh = true;
        created[k] = new_storage(out_count, L, true);
        y.storages = {created[k]};
        break;
      case EncryptedNodeKind::MaxPool: {
        const int level = x.factor ? x.level - 1 : x.level;
        if (x.factor) nf.materialized = elems(g, data[0]);
        nf.input_level = level;
        record_reads(x, x.level);
        const auto& p = std::get<model::PoolParams>(n.params);
        const model::Shape& xs = g.tensors[static_cast<std::size_t>(data[0])].shape;
        const runtime::kernels::WindowIndexer win(xs, g.tensors[static_cast<std::size_t>(out)].shape, p.kernel,
                                                  p.strides, p.dilations, p.pads_begin, p.pads_end);
        std::int64_t taps = 0;  // in-bounds window entries per channel
        for (std::int64_t os = 0; os < win.out_size; ++os) {
          std::array<std::int64_t, runtime::kernels::kMaxSpatial> base;
          win.origin(os, base);
          for (std::int64_t kp = 0; kp < win.kernel_size; ++kp) taps += win.input_offset(base, kp) >= 0;
        }
        nf.round_ciphertexts = taps * xs[0];
        nf.round_replies = out_count;
        y.level = L;
        y.factor = true;
        y.fresh = true;
        created[k] = new_storage(out_count, L, true);
        y.storages = {created[k]};
        break;
      }
      case EncryptedNodeKind::Clip:
      case EncryptedNodeKind::LeakyRelu: {
        // Pending factors are folded into the windows' shifts and the combining weights;
        // only a scale other than Δ (a square's output) is materialized first.
        const bool materialize = !x.delta;
        const int level = materialize ? x.level - 1 : x.level;
        if (materialize) nf.materialized = elems(g, data[0]);
        nf.input_level = level;
        record_reads(x, x.level);
        const bool leaky = kinds[k] == EncryptedNodeKind::LeakyRelu;
        double lo = -INFINITY, hi = INFINITY;
        if (const auto* c = std::get_if<model::ClipParams>(&n.params)) {
          lo = c->min;
          hi = c->max;
        }
        if (!leaky && std::isinf(lo) && std::isinf(hi)) {  // identity: shares x
          y = x;
          if (materialize) {
            y.level = level;
            y.factor = false;
            y.delta = true;
            y.fresh = false;
            created[k] = new_storage(out_count, level, false);
            y.storages = {created[k]};
          }
          break;
        }
        const std::int64_t shifts = leaky ? 1 : (std::isfinite(lo) ? 1 : 0) + (std::isfinite(hi) ? 1 : 0);
        const bool uses_x = leaky || std::isinf(lo);
        nf.round_ciphertexts = nf.round_replies = shifts * out_count;
        nf.mac_terms = (shifts + (uses_x ? 1 : 0)) * out_count;
        nf.rescale = true;
        nf.aligned = nf.round_replies;  // replies lowered to the combination level
        const int comb = uses_x ? level : L;
        y.level = comb - 1;
        created[k] = new_storage(out_count, y.level, false);
        y.storages = {created[k]};
        break;
      }
      case EncryptedNodeKind::FinalSoftmax:
        nf.input_level = x.level;
        record_reads(x, x.level);
        y.level = -1;
        break;
    }
    nf.output_ciphertexts = kinds[k] == EncryptedNodeKind::FinalSoftmax ? 0 : out_count;
    nf.output_level = y.level;
    val[static_cast<std::size_t>(out)] = std::move(y);
  }
  for (TensorId t : g.outputs) {
    const Value& v = val[static_cast<std::size_t>(t)];
    if (v.level >= 0) {
      est.output_ciphertexts += elems(g, t);
      for (int s : v.storages) st[static_cast<std::size_t>(s)].stored_level = st[static_cast<std::size_t>(s)].level;
    }
  }

  // ---- lowest needed level of every storage: the highest level a reader reads it at ----
  if (o.lowest_level_storage) {
    std::vector<int> needed(st.size(), -1);
    for (const auto& r : reads) {
      for (const auto& [s, l] : r) needed[static_cast<std::size_t>(s)] = std::max(needed[static_cast<std::size_t>(s)], l);
    }
    std::vector<bool> is_output(st.size(), false);
    for (TensorId t : g.outputs) {
      for (int s : val[static_cast<std::size_t>(t)].storages) is_output[static_cast<std::size_t>(s)] = true;
    }
    for (std::size_t s = 0; s < st.size(); ++s) {
      st[s].stored_level = is_output[s] || needed[s] < 0 ? st[s].level : std::min(st[s].level, needed[s]);
    }
  } else {
    for (auto& s : st) s.stored_level = s.level;
  }
  auto stored_bytes = [&](const Storage& s) {
    return s.count * ct(s.stored_level, o.compact_fresh && s.fresh);
  };

  // ---- pass 2: live bytes over the schedule ----
  std::int64_t live = 0;
  auto acquire = [&](int s) {
    auto& x = st[static_cast<std::size_t>(s)];
    if (x.refs++ == 0) live += stored_bytes(x);
  };
  auto release = [&](int s) {
    auto& x = st[static_cast<std::size_t>(s)];
    if (--x.refs == 0) live -= stored_bytes(x);
  };
  for (TensorId t : g.inputs) {
    for (int s : val[static_cast<std::size_t>(t)].storages) acquire(s);
  }
  const auto free_after = model::activations_to_free(g);
  // Per node, for the streamed replay: the final output bytes, the compact inputs it
  // expands, its aligned copies, and the rest of its working set (before the tile cap).
  struct Work {
    std::int64_t final_out = 0, expand = 0, copies = 0, rest = 0;
  };
  std::vector<Work> work(g.nodes.size());
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    NodeFootprint& nf = est.nodes[k];
    const TensorId out = n.outputs[0];
    const std::int64_t out_count = elems(g, out);
    const Value& y = val[static_cast<std::size_t>(out)];
    // Nodes that compute on their inputs hold expanded copies of compact fresh inputs and
    // level-aligned copies of inputs stored above the level they are read at.
    const bool computes = nf.kind != EncryptedNodeKind::DataMovement && nf.kind != EncryptedNodeKind::FusedRelu &&
                          nf.kind != EncryptedNodeKind::FinalSoftmax;
    std::int64_t expand = 0, copies = 0;
    if (computes) {
      std::vector<int> seen;
      for (const auto& [s, l] : reads[k]) {
        const Storage& x = st[static_cast<std::size_t>(s)];
        if (std::find(seen.begin(), seen.end(), s) != seen.end()) continue;
        seen.push_back(s);
        if (o.compact_fresh && x.fresh) {
          expand += x.count * ct(x.stored_level, true);
          nf.fresh_inputs += x.count;
        }
        if (x.stored_level > l) copies += x.count * ct(l);
      }
      copies += nf.materialized * ct(nf.input_level + 1);  // allocated before the rescale
    }
    std::int64_t transient = 0;
    std::int64_t out_bytes = 0;
    switch (nf.kind) {
      case EncryptedNodeKind::DataMovement:
      case EncryptedNodeKind::FusedRelu: break;
      case EncryptedNodeKind::Linear:
        if (nf.rescale) {
          // Outputs allocated at the input level before the rescale; per term one encoded
          // residue per limb and an (input pointer, weight) pair.
          out_bytes = out_count * ct(nf.input_level);
          transient = nf.mac_terms * (8 * (nf.input_level + 1) + 16);
        } else {
          out_bytes = out_count * ct(y.level);
          transient = nf.additions * 16;
        }
        break;
      case EncryptedNodeKind::Square: out_bytes = out_count * ct(nf.input_level); break;
      case EncryptedNodeKind::Relu:
      case EncryptedNodeKind::MaxPool:
        // Masked window copies (expanded, at the input level) + the replies.
        transient = nf.round_ciphertexts * ct(nf.input_level);
        out_bytes = out_count * ct(L, o.compact_fresh);
        break;
      case EncryptedNodeKind::Clip:
      case EncryptedNodeKind::LeakyRelu: {
        if (nf.round_ciphertexts == 0) {
          out_bytes = created[k] >= 0 ? out_count * ct(y.level) : 0;
          break;
        }
        // Per element: its masked windows (at the input level), the compact replies and
        // their expanded, lowered copies, the output before the rescale.
        out_bytes = out_count * ct(y.level + 1);
        transient = nf.round_ciphertexts * ct(nf.input_level) +
                    nf.round_replies * (ct(L, o.compact_fresh) + ct(y.level + 1));
        break;
      }
      case EncryptedNodeKind::FinalSoftmax: break;
    }
    // The outputs in their final form stay; the rest is the working set, which the
    // executor bounds by processing tiles / round chunks of about tile_bytes.
    std::int64_t final_out = 0;
    switch (nf.kind) {
      case EncryptedNodeKind::Linear:
      case EncryptedNodeKind::Square:
      case EncryptedNodeKind::Clip:
      case EncryptedNodeKind::LeakyRelu: final_out = std::min(out_bytes, out_count * ct(y.level)); break;
      default: final_out = out_bytes; break;
    }
    work[k] = {final_out, expand, copies, transient + (out_bytes - final_out)};
    nf.live_bytes = live + final_out + capped_working(nf.kind, expand, copies + transient + (out_bytes - final_out), o);
    if (nf.live_bytes > est.peak_bytes) {
      est.peak_bytes = nf.live_bytes;
      est.peak_node = static_cast<std::int64_t>(k);
    }
    if (created[k] >= 0) nf.output_bytes = stored_bytes(st[static_cast<std::size_t>(created[k])]);
    for (int s : y.storages) acquire(s);
    for (TensorId t : free_after[k]) {
      for (int s : val[static_cast<std::size_t>(t)].storages) release(s);
    }
  }
  est.unstreamed_peak_bytes = est.peak_bytes;
  if (!o.streaming) return est;

  // ---- pass 3: streaming across layers (runtime/stream_schedule.h) ----
  // Replays the executor's schedule: a storage holds the rows produced and not released
  // of the tensors pointing into it (all of it for a whole tensor); a band adds its share
  // of the node's final outputs and working set (the rows of the inputs it reads for
  // expansions and aligned copies, its output rows for the rest).
  runtime::StreamOptions so;
  so.band_elements = std::max<std::int64_t>(1, o.tile_bytes / ct(L) / 8);
  const auto steps = runtime::stream_schedule(g, runtime::streamable_nodes(g), so);
  const std::size_t tensors = g.tensors.size();
  std::vector<std::int64_t> produced(tensors, 0), released(tensors, 0);
  std::vector<bool> alive(tensors, false);
  auto rows_of = [&](TensorId t) {
    const auto& sh = g.tensors[static_cast<std::size_t>(t)].shape;
    return sh.size() == 3 ? sh[1] : std::int64_t{0};
  };
  // Inputs that only streamed bands read are encrypted band by band as they are read
  // (runtime::inputs_on_demand, by an in-process client); the others exist whole.
  const auto on_demand = runtime::inputs_on_demand(g, steps);
  for (TensorId t : g.inputs) {
    alive[static_cast<std::size_t>(t)] = true;
    produced[static_cast<std::size_t>(t)] = on_demand[static_cast<std::size_t>(t)] ? 0 : rows_of(t);
  }
  // Tensors pointing into each storage.
  std::vector<std::vector<TensorId>> users(st.size());
  for (std::size_t t = 0; t < tensors; ++t) {
    for (int s : val[t].storages) users[static_cast<std::size_t>(s)].push_back(static_cast<TensorId>(t));
  }
  auto live_bytes = [&] {
    std::int64_t total = 0;
    for (std::size_t s = 0; s < st.size(); ++s) {
      std::int64_t lo = -1, hi = -1, row = 0;
      bool whole = false, any = false;
      for (TensorId t : users[s]) {
        const auto ti = static_cast<std::size_t>(t);
        if (!alive[ti]) continue;
        any = true;
        const std::int64_t h = rows_of(t);
        if (h == 0 || elems(g, t) != st[s].count) {
          whole = true;
          break;
        }
        row = st[s].count / h;
        lo = lo < 0 ? released[ti] : std::min(lo, released[ti]);
        hi = std::max(hi, produced[ti]);
      }
      if (!any) continue;
      const std::int64_t count = whole ? st[s].count : std::clamp<std::int64_t>((hi - lo) * row, 0, st[s].count);
      if (count > 0) total += count * (stored_bytes(st[s]) / std::max<std::int64_t>(1, st[s].count));
    }
    return total;
  };
  for (auto& nf : est.nodes) nf.live_bytes = 0;
  est.peak_bytes = 0;
  est.peak_node = -1;
  for (const runtime::StreamStep& step : steps) {
    const auto k = static_cast<std::size_t>(step.node);
    const model::Node& n = g.nodes[k];
    NodeFootprint& nf = est.nodes[k];
    const TensorId out = n.outputs[0];
    const Work& w = work[k];
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const TensorId t = n.inputs[i];
      if (!is_data(g, t) || !on_demand[static_cast<std::size_t>(t)]) continue;
      const auto m = runtime::row_map(g, n, i);
      auto& p = produced[static_cast<std::size_t>(t)];
      p = std::max(p, step.streamed && m ? m->end(step.row_end) : rows_of(t));
    }
    std::int64_t band = w.final_out + capped_working(nf.kind, w.expand, w.copies + w.rest, o);
    if (step.streamed) {
      const auto h = static_cast<double>(rows_of(out));
      const double f_out = static_cast<double>(step.row_end - step.row_begin) / h;
      double f_in = 0;  // the largest share of an input's rows the band reads
      for (std::size_t i = 0; i < n.inputs.size(); ++i) {
        if (!is_data(g, n.inputs[i])) continue;
        const auto m = runtime::row_map(g, n, i);
        if (m && !m->all && m->in_rows > 0) {
          f_in = std::max(f_in, static_cast<double>(m->end(step.row_end) - m->begin(step.row_begin)) /
                                    static_cast<double>(m->in_rows));
        }
      }
      if (f_in == 0) f_in = f_out;
      auto share = [](std::int64_t bytes, double f) { return std::llround(static_cast<double>(bytes) * f); };
      band = share(w.final_out, f_out) + capped_working(nf.kind, share(w.expand, f_in),
                                                        share(w.copies, f_in) + share(w.rest, f_out), o);
    }
    const std::int64_t bytes = live_bytes() + band;
    nf.live_bytes = std::max(nf.live_bytes, bytes);
    if (bytes > est.peak_bytes) {
      est.peak_bytes = bytes;
      est.peak_node = static_cast<std::int64_t>(k);
    }
    alive[static_cast<std::size_t>(out)] = true;
    produced[static_cast<std::size_t>(out)] = step.row_end;
    for (const auto& [t, r] : step.release) {
      auto& done = released[static_cast<std::size_t>(t)];
      done = std::max(done, r);
    }
    if (step.last) {
      for (TensorId t : free_after[k]) alive[static_cast<std::size_t>(t)] = false;
    }
  }
  return est;
}

}  // namespace heinfer::memory
