#include "plan/footprint.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <variant>

#include "ckks/sizes.h"
#include "model/analysis.h"
#include "model/error.h"

namespace heinfer::plan {
namespace {

using model::OpType;
using model::TensorId;

/// An activation, as the footprint tracks it: the ciphertext storages it points into.
struct Value {
  std::vector<int> storages;
};

/// A set of ciphertexts created together (shared by data-movement aliases).
struct Storage {
  std::int64_t count = 0;
  int level = 0;        ///< level at creation
  bool fresh = false;
  int stored_level = 0; ///< level while stored (lowest needed level, or `level`)
  int refs = 0;         ///< live tensors pointing into it
};

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
        if (!model::is_activation(g, n.inputs[i]) && n.inputs[i] != model::kNoTensor) {
          return std::llround(static_cast<double>(out) * nonzero_fraction(g, n, i));
        }
      }
      return out;
    }
    case OpType::Add:
    case OpType::Sub: return out * model::activation_input_count(g, n);
    case OpType::AveragePool:
    case OpType::GlobalAveragePool:
    case OpType::Resize:
    case OpType::Upsample: return model::macs(g, n);
    default: return out;
  }
}

/// The working set of a node (or of a band of it) beyond its final outputs: `expand`
/// (compact inputs expanded) + `rest`, capped at tile_bytes when the executor tiles it;
/// a tiled linear node / square has the store expand its compact inputs once for all
/// tiles (CiphertextStore::expand), so those stay whole.
std::int64_t capped_working(NodeKind kind, std::int64_t expand, std::int64_t rest, std::int64_t tile_bytes) {
  std::int64_t working = expand + rest;
  if (tile_bytes <= 0 || working <= tile_bytes) return working;
  std::int64_t whole = 0;
  if (kind == NodeKind::Linear || kind == NodeKind::Square) {
    whole = expand;
    working -= expand;
  }
  return whole + std::min(working, tile_bytes);
}

}  // namespace

std::int64_t evaluation_key_bytes(const Parameters& parameters) {
  const std::int64_t one = ckks::key_switching_key_bytes(parameters.params);
  return parameters.packing == ckks::Packing::Complex ? 2 * one : one;
}

FootprintEstimate predict_footprint(const model::Graph& g, const EncryptedPlan& plan, const FootprintOptions& o) {
  // One rank's share of a distributed run, or all of it.
  const bool shared = !o.tensor_share.empty() || !o.node_share.empty();
  if (shared && (o.tensor_share.size() != g.tensors.size() || o.node_share.size() != g.nodes.size())) {
    throw std::invalid_argument("predict_footprint: a rank's shares must cover every tensor and node");
  }
  auto held = [&](TensorId t) {
    const std::int64_t all = elems(g, t);
    return shared ? std::llround(static_cast<double>(all) * o.tensor_share[static_cast<std::size_t>(t)]) : all;
  };
  auto share_of = [&](std::size_t k, std::int64_t all) {
    return shared ? std::llround(static_cast<double>(all) * o.node_share[k]) : all;
  };
  FootprintEstimate est;
  const std::size_t N = plan.parameters.params.poly_modulus_degree();
  const int L = plan.max_level;
  const std::int64_t tile_bytes = plan.options.tile_bytes;
  est.n = N;
  est.max_level = L;
  est.key_bytes = evaluation_key_bytes(plan.parameters);
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
  auto ct = [&](int level, bool compact = false) { return ckks::ciphertext_bytes(N, level, compact); };
  // At rest: 32-bit words hold the limbs of primes below 2^32 (bit size <= 32).
  const std::vector<int>& bits = plan.parameters.params.coeff_bits();
  auto stored_ct = [&](int level, bool compact) {
    if (o.limb_words != 32) return ct(level, compact);
    std::int64_t b = 0;
    for (int i = 0; i <= level && i < static_cast<int>(bits.size()); ++i) {
      b += ckks::fits_32_bit_word(bits[static_cast<std::size_t>(i)]) ? 4 : 8;
    }
    return b * static_cast<std::int64_t>(N) * (compact ? 1 : 2);
  };
  auto tensor = [&](TensorId t) -> const TensorPlan& { return plan.tensors[static_cast<std::size_t>(t)]; };

  // ---- pass 1: the storages of every tensor and the work of every node, from the plan ----
  std::vector<Value> val(g.tensors.size());
  std::vector<Storage> st;
  // A storage created for tensor `owner` (-1: an aligned copy) is stored at the plan's
  // stored level of that tensor.
  auto new_storage = [&](std::int64_t count, int level, bool fresh, TensorId owner) {
    const int stored = o.lowest_level_storage && owner != model::kNoTensor ? std::min(level, tensor(owner).stored_level) : level;
    st.push_back({count, level, fresh, stored, 0});
    return static_cast<int>(st.size()) - 1;
  };
  for (TensorId t : g.inputs) {
    val[static_cast<std::size_t>(t)].storages = {new_storage(held(t), L, true, t)};
    est.input_ciphertexts += held(t);
  }
  // Per node: the storage the node creates (-1: none), and the (storage, level) pairs it reads.
  std::vector<int> created(g.nodes.size(), -1);
  std::vector<std::vector<std::pair<int, int>>> reads(g.nodes.size());
  est.nodes.resize(g.nodes.size());
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    const NodePlan& np = plan.nodes[k];
    NodeFootprint& nf = est.nodes[k];
    const TensorId out = n.outputs[0];
    const std::int64_t out_count = held(out);
    std::vector<std::size_t> data;  // indices into n.inputs
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      if (model::is_activation(g, n.inputs[i])) data.push_back(i);
    }
    const TensorId x = n.inputs[data.at(0)];
    Value y;
    auto record_reads = [&](TensorId t, int level) {
      for (int s : val[static_cast<std::size_t>(t)].storages) reads[k].emplace_back(s, level);
    };
    auto create = [&](int level, bool fresh) {
      created[k] = new_storage(out_count, level, fresh, out);
      y.storages = {created[k]};
    };
    for (std::size_t i : data) {
      if (np.materialized[i]) nf.materialized += held(n.inputs[i]);
    }
    switch (np.kind) {
      case NodeKind::DataMovement:
      case NodeKind::Linear:
      case NodeKind::Square: {
        for (std::size_t i : data) {
          const TensorId t = n.inputs[i];
          const int at = tensor(t).level - (np.materialized[i] ? 1 : 0);
          record_reads(t, np.materialized[i] ? tensor(t).level : np.input_level);
          if (at != np.input_level) nf.aligned += held(t);
          if (np.kind != NodeKind::DataMovement) continue;
          if (at != np.input_level || np.materialized[i]) {
            y.storages.push_back(new_storage(held(t), np.input_level, false, model::kNoTensor));  // aligned copy
          } else {
            const auto& v = val[static_cast<std::size_t>(t)].storages;
            y.storages.insert(y.storages.end(), v.begin(), v.end());
          }
        }
        if (np.kind == NodeKind::Square) {
          nf.squares = out_count;
          if (np.deferred_product) {  // three polynomials: the bytes of 1.5 ciphertexts each
            created[k] = new_storage((out_count * 3 + 1) / 2, np.output_level, false, out);
            y.storages = {created[k]};
          } else {
            create(np.output_level, false);
          }
        } else if (np.kind == NodeKind::Linear) {
          const std::int64_t terms = share_of(k, linear_terms(g, n));
          if (np.rescale) nf.mac_terms = terms;
          else nf.additions = terms;
          create(np.output_level, false);
        }
        break;
      }
      case NodeKind::FusedRelu:
      case NodeKind::FinalSoftmax:
        record_reads(x, tensor(x).level);
        if (np.kind == NodeKind::FusedRelu) y = val[static_cast<std::size_t>(x)];
        break;
      case NodeKind::Relu:
      case NodeKind::MaxPool:
      case NodeKind::FunctionRound:
        record_reads(x, tensor(x).level);
        create(np.output_level, np.output_level == L);  // fresh (compact), or unmasked below L
        break;
      case NodeKind::Clip:
      case NodeKind::LeakyRelu: {
        record_reads(x, tensor(x).level);
        if (np.identity) {  // shares x, or its copy brought to Δ
          if (np.materialized[data[0]]) create(np.input_level, false);
          else y = val[static_cast<std::size_t>(x)];
          break;
        }
        nf.mac_terms = share_of(k, np.round_replies) + (np.combines_input ? out_count : 0);
        nf.aligned = share_of(k, np.round_replies);  // replies lowered to the combination level
        create(np.output_level, false);
        break;
      }
    }
    val[static_cast<std::size_t>(out)] = std::move(y);
  }

  for (TensorId t : g.outputs) {
    if (tensor(t).level >= 0) est.output_ciphertexts += held(t);
  }

  auto stored_bytes = [&](const Storage& s) {
    return s.count * stored_ct(s.stored_level, o.compact_fresh && s.fresh);
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
  // Per node, for the streamed replay: the final output bytes, the compact inputs it
  // expands, its aligned copies, and the rest of its working set (before the tile cap).
  struct Work {
    std::int64_t final_out = 0, expand = 0, copies = 0, rest = 0;
  };
  std::vector<Work> work(g.nodes.size());
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    const model::Node& n = g.nodes[k];
    NodeFootprint& nf = est.nodes[k];
    const NodePlan& np = plan.nodes[k];
    const TensorId out = n.outputs[0];
    const std::int64_t out_count = held(out);
    const Value& y = val[static_cast<std::size_t>(out)];
    const int y_level = plan.nodes[k].output_level;
    // Nodes that compute on their inputs hold expanded copies of compact fresh inputs and
    // level-aligned copies of inputs stored above the level they are read at.
    const bool computes = np.kind != NodeKind::DataMovement && np.kind != NodeKind::FusedRelu &&
                          np.kind != NodeKind::FinalSoftmax;
    std::int64_t expand = 0, copies = 0;
    if (computes) {
      std::vector<int> seen;
      for (const auto& [s, l] : reads[k]) {
        const Storage& x = st[static_cast<std::size_t>(s)];
        if (std::find(seen.begin(), seen.end(), s) != seen.end()) continue;
        seen.push_back(s);
        if (o.compact_fresh && x.fresh) {
          expand += x.count * (ct(x.stored_level) - stored_ct(x.stored_level, true));
          nf.fresh_inputs += x.count;
        } else if (o.limb_words == 32) {
          expand += x.count * (ct(x.stored_level) - stored_ct(x.stored_level, false));
        }
        if (x.stored_level > l) copies += x.count * ct(l);
      }
      copies += nf.materialized * ct(np.input_level + 1);  // allocated before the rescale
    }
    std::int64_t transient = 0;
    std::int64_t out_bytes = 0;
    switch (np.kind) {
      case NodeKind::DataMovement:
      case NodeKind::FusedRelu: break;
      case NodeKind::Linear:
        if (np.rescale) {
          // Outputs allocated at the input level before the rescale; per term one encoded
          // residue per limb and an (input pointer, weight) pair.
          out_bytes = out_count * ct(np.input_level) * (np.rescale_twice ? 3 : 2) / 2;  // 3 polynomials before relinearization
          transient = nf.mac_terms * (8 * (np.input_level + 1) + 16);
        } else {
          out_bytes = out_count * ct(y_level);
          transient = nf.additions * 16;
        }
        break;
      case NodeKind::Square: out_bytes = out_count * ct(np.input_level) * 3 / 2; break;  // the product
      case NodeKind::Relu:
      case NodeKind::MaxPool:
      case NodeKind::FunctionRound:
        // Masked window copies (expanded, at the input level) + the replies; per-sample
        // masks: the replies (two with the signed value) unmasked one level below.
        transient = share_of(k, np.round_ciphertexts) * ct(np.input_level);
        out_bytes = out_count * (np.output_level == L ? ct(L, o.compact_fresh) : ct(y_level));
        if (np.output_level != L) {
          transient += share_of(k, np.round_replies) * (np.round_signed_value ? 2 : 1) * (ct(L, o.compact_fresh) + ct(L));
        }
        break;
      case NodeKind::Clip:
      case NodeKind::LeakyRelu: {
        if (np.round_ciphertexts == 0) {
          out_bytes = created[k] >= 0 ? out_count * ct(y_level) : 0;
          break;
        }
        // Per element: its masked windows (at the input level), the compact replies and
        // their expanded, lowered copies, the output before the rescale.
        out_bytes = out_count * ct(y_level + 1);
        transient = share_of(k, np.round_ciphertexts) * ct(np.input_level) +
                    share_of(k, np.round_replies) * (np.round_signed_value ? 2 : 1) * (ct(L, o.compact_fresh) + ct(y_level + 1));
        break;
      }
      case NodeKind::FinalSoftmax: break;
    }
    // The outputs in their final form stay; the rest is the working set, which the
    // executor bounds by processing tiles / round chunks of about tile_bytes.
    std::int64_t final_out = 0;
    switch (np.kind) {
      case NodeKind::Linear:
      case NodeKind::Square:
      case NodeKind::Clip:
      case NodeKind::LeakyRelu: final_out = std::min(out_bytes, out_count * ct(y_level)); break;
      default: final_out = out_bytes; break;
    }
    work[k] = {final_out, expand, copies, transient + (out_bytes - final_out)};
    nf.live_bytes = live + final_out + capped_working(np.kind, expand, copies + transient + (out_bytes - final_out), tile_bytes);
    if (nf.live_bytes > est.peak_bytes) {
      est.peak_bytes = nf.live_bytes;
      est.peak_node = static_cast<std::int64_t>(k);
    }
    if (created[k] >= 0) nf.output_bytes = stored_bytes(st[static_cast<std::size_t>(created[k])]);
    for (int s : y.storages) acquire(s);
    for (TensorId t : plan.nodes[k].free_after) {
      for (int s : val[static_cast<std::size_t>(t)].storages) release(s);
    }
  }
  est.unstreamed_peak_bytes = est.peak_bytes;
  if (!plan.options.streaming) {
    est.hot_peak_bytes = est.peak_bytes;
    for (auto& nf : est.nodes) nf.hot_bytes = nf.live_bytes;
    return est;
  }

  // ---- pass 3: streaming across layers (plan/stream_schedule.h) ----
  // Replays the executor's schedule: a storage holds the rows produced and not released
  // of the tensors pointing into it (all of it for a whole tensor); a band adds its share
  // of the node's final outputs and working set (the rows of the inputs it reads for
  // expansions and aligned copies, its output rows for the rest).
  const auto& steps = plan.steps;
  const std::size_t tensors = g.tensors.size();
  std::vector<std::int64_t> produced(tensors, 0), released(tensors, 0);
  std::vector<bool> alive(tensors, false);
  auto rows_of = [&](TensorId t) {
    const auto& sh = g.tensors[static_cast<std::size_t>(t)].shape;
    return sh.size() == 3 ? sh[1] : std::int64_t{0};
  };
  // Inputs that only streamed bands read are encrypted band by band as they are read
  // (EncryptedPlan::inputs_on_demand, by an in-process client); the others exist whole.
  const auto& on_demand = plan.inputs_on_demand;
  for (TensorId t : g.inputs) {
    alive[static_cast<std::size_t>(t)] = true;
    produced[static_cast<std::size_t>(t)] = on_demand[static_cast<std::size_t>(t)] ? 0 : rows_of(t);
  }
  // Tensors pointing into each storage.
  std::vector<std::vector<TensorId>> users(st.size());
  for (std::size_t t = 0; t < tensors; ++t) {
    for (int s : val[t].storages) users[static_cast<std::size_t>(s)].push_back(static_cast<TensorId>(t));
  }
  // What a tiered run needs in DRAM (FootprintEstimate::hot_peak_bytes): per storage the
  // steps that read it and the step that created it; per step its segment's first and
  // last steps (a whole node is a segment of its own).
  std::vector<std::vector<std::int64_t>> storage_reads(st.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    for (TensorId t : g.nodes[static_cast<std::size_t>(steps[i].node)].inputs) {
      if (!model::is_activation(g, t)) continue;
      for (int s : val[static_cast<std::size_t>(t)].storages) {
        auto& r = storage_reads[static_cast<std::size_t>(s)];
        if (r.empty() || r.back() != static_cast<std::int64_t>(i)) r.push_back(static_cast<std::int64_t>(i));
      }
    }
  }
  std::vector<std::int64_t> seg_first(steps.size()), seg_last(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const bool same = i > 0 && steps[i].segment >= 0 && steps[i - 1].segment == steps[i].segment;
    seg_first[i] = same ? seg_first[i - 1] : static_cast<std::int64_t>(i);
  }
  for (std::size_t i = steps.size(); i-- > 0;) {
    const bool same = i + 1 < steps.size() && steps[i].segment >= 0 && steps[i + 1].segment == steps[i].segment;
    seg_last[i] = same ? seg_last[i + 1] : static_cast<std::int64_t>(i);
  }
  constexpr std::int64_t kNotYet = std::numeric_limits<std::int64_t>::max();
  std::vector<std::int64_t> created_at(st.size(), kNotYet);
  for (TensorId t : g.inputs) {
    if (on_demand[static_cast<std::size_t>(t)]) continue;
    for (int s : val[static_cast<std::size_t>(t)].storages) created_at[static_cast<std::size_t>(s)] = -1;
  }
  // Hot at step i: read again within i's segment, and (streamed steps) created in it;
  // the rest is read later (a tiered run demotes it) or is a tensor computed whole before
  // the segment that the segment reads row by row (its rows are fetched band by band).
  auto hot = [&](std::size_t s, std::size_t i) {
    const auto& r = storage_reads[s];
    const auto next = std::lower_bound(r.begin(), r.end(), static_cast<std::int64_t>(i));
    if (next == r.end() || *next > seg_last[i]) return false;
    return steps[i].segment < 0 || created_at[s] >= seg_first[i];
  };
  struct Live {
    std::int64_t total = 0, hot = 0;
  };
  auto live_bytes = [&](std::vector<FootprintEstimate::PeakPart>* parts, std::size_t step) {
    Live total;
    for (std::size_t s = 0; s < st.size(); ++s) {
      std::int64_t lo = -1, hi = -1, row = 0;
      bool whole = false, any = false;
      TensorId named = -1;  // an alive tensor of the storage, for peak_parts
      for (TensorId t : users[s]) {
        const auto ti = static_cast<std::size_t>(t);
        if (!alive[ti]) continue;
        any = true;
        if (named < 0) named = t;
        const std::int64_t h = rows_of(t);
        if (h == 0 || held(t) != st[s].count) {
          whole = true;
          break;
        }
        row = st[s].count / h;
        lo = lo < 0 ? released[ti] : std::min(lo, released[ti]);
        hi = std::max(hi, produced[ti]);
      }
      if (!any) continue;
      const std::int64_t count = whole ? st[s].count : std::clamp<std::int64_t>((hi - lo) * row, 0, st[s].count);
      if (count <= 0) continue;
      const std::int64_t bytes = count * (stored_bytes(st[s]) / std::max<std::int64_t>(1, st[s].count));
      total.total += bytes;
      if (hot(s, step)) total.hot += bytes;
      if (parts) parts->push_back({named, whole ? 0 : lo, whole ? 0 : hi, bytes});
    }
    return total;
  };
  for (auto& nf : est.nodes) nf.live_bytes = nf.hot_bytes = 0;
  est.peak_bytes = est.hot_peak_bytes = 0;
  est.peak_node = -1;
  est.steps.reserve(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const StreamStep& step = steps[i];
    const auto k = static_cast<std::size_t>(step.node);
    const model::Node& n = g.nodes[k];
    NodeFootprint& nf = est.nodes[k];
    const TensorId out = n.outputs[0];
    const Work& w = work[k];
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const TensorId t = n.inputs[i];
      if (!model::is_activation(g, t) || !on_demand[static_cast<std::size_t>(t)]) continue;
      const auto m = row_map(g, n, i);
      auto& p = produced[static_cast<std::size_t>(t)];
      p = std::max(p, step.streamed && m ? m->end(step.row_end) : rows_of(t));
      for (int s : val[static_cast<std::size_t>(t)].storages) {
        auto& c = created_at[static_cast<std::size_t>(s)];
        c = std::min(c, static_cast<std::int64_t>(i));
      }
    }
    std::int64_t band_out = w.final_out, band_expand = w.expand, band_rest = w.copies + w.rest;
    if (step.streamed) {
      const auto h = static_cast<double>(rows_of(out));
      const double f_out = static_cast<double>(step.row_end - step.row_begin) / h;
      double f_in = 0;  // the largest share of an input's rows the band reads
      for (std::size_t i = 0; i < n.inputs.size(); ++i) {
        if (!model::is_activation(g, n.inputs[i])) continue;
        const auto m = row_map(g, n, i);
        if (m && !m->all && m->in_rows > 0) {
          f_in = std::max(f_in, static_cast<double>(m->end(step.row_end) - m->begin(step.row_begin)) /
                                    static_cast<double>(m->in_rows));
        }
      }
      if (f_in == 0) f_in = f_out;
      auto share = [](std::int64_t bytes, double f) { return std::llround(static_cast<double>(bytes) * f); };
      band_out = share(w.final_out, f_out);
      band_expand = share(w.expand, f_in);
      band_rest = share(w.copies, f_in) + share(w.rest, f_out);
    }
    const std::int64_t working = capped_working(plan.nodes[k].kind, band_expand, band_rest, tile_bytes);
    const std::int64_t band = band_out + working;
    const Live now = live_bytes(nullptr, i);
    const std::int64_t bytes = now.total + band;
    nf.live_bytes = std::max(nf.live_bytes, bytes);
    nf.hot_bytes = std::max(nf.hot_bytes, now.hot + band_out);
    est.hot_peak_bytes = std::max(est.hot_peak_bytes, now.hot + band_out);
    est.steps.push_back({now.hot + band_out, band_out});
    if (bytes > est.peak_bytes) {
      est.peak_bytes = bytes;
      est.peak_node = static_cast<std::int64_t>(k);
      est.peak_parts.clear();
      live_bytes(&est.peak_parts, i);
      est.peak_parts.push_back({out, step.row_begin, step.row_end, band_out});
      est.peak_parts.push_back({-1, step.row_begin, step.row_end, working});
    }
    alive[static_cast<std::size_t>(out)] = true;
    produced[static_cast<std::size_t>(out)] = step.row_end;
    for (int s : val[static_cast<std::size_t>(out)].storages) {
      auto& c = created_at[static_cast<std::size_t>(s)];
      c = std::min(c, static_cast<std::int64_t>(i));
    }
    for (const auto& [t, r] : step.release) {
      auto& done = released[static_cast<std::size_t>(t)];
      done = std::max(done, r);
    }
    if (step.last) {
      for (TensorId t : plan.nodes[k].free_after) alive[static_cast<std::size_t>(t)] = false;
    }
  }
  std::sort(est.peak_parts.begin(), est.peak_parts.end(),
            [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
  return est;
}

}  // namespace heinfer::plan
