#include "plan/partition_cost.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "ckks/sizes.h"
#include "plan/stream_schedule.h"

namespace heinfer::plan {
namespace {

/// The fraction of t's elements rank r owns.
double own_fraction(const TensorSplit& s, int r) {
  const auto [b, e] = s.columns(r);
  return s.width > 0 ? static_cast<double>(e - b) / static_cast<double>(s.width) : 0.0;
}

int ceil_log2(int p) {
  int k = 0;
  while ((1 << k) < p) ++k;
  return k;
}

}  // namespace

std::vector<RankShare> rank_shares(const model::Graph& g, const EncryptedPlan& plan, const Partition& p) {
  if (p.tensors.size() != g.tensors.size() || p.nodes.size() != g.nodes.size() || p.ranks < 1) {
    throw std::invalid_argument("rank_shares: the partition does not match the graph");
  }
  const auto P = static_cast<std::size_t>(p.ranks);
  const std::size_t T = g.tensors.size(), K = g.nodes.size();
  std::vector<RankShare> sh(P);
  for (std::size_t r = 0; r < P; ++r) {
    sh[r].tensor.assign(T, 0.0);
    sh[r].node.assign(K, 0.0);
    sh[r].node_sent.assign(K, 0);
    sh[r].node_received.assign(K, 0);
    for (std::size_t t = 0; t < T; ++t) {
      if (!g.tensors[t].is_constant) sh[r].tensor[t] = own_fraction(p.tensors[t], static_cast<int>(r));
    }
  }
  // Ciphertexts travel as stored: at the tensor's stored level, compact (seeded, c1
  // dropped) when fresh from the client (graph inputs, round outputs at the top level).
  std::vector<bool> fresh(T, false);
  for (model::TensorId t : g.inputs) fresh[static_cast<std::size_t>(t)] = true;
  for (std::size_t k = 0; k < K; ++k) {
    const NodePlan& np = plan.nodes[k];
    const bool round = np.kind == NodeKind::Relu || np.kind == NodeKind::MaxPool || np.kind == NodeKind::FunctionRound;
    if (round && np.output_level == plan.max_level) fresh[static_cast<std::size_t>(g.nodes[k].outputs[0])] = true;
  }
  auto ct_bytes = [&](model::TensorId t) {
    const auto ti = static_cast<std::size_t>(t);
    return ckks::serialized_ciphertext_bytes(plan.parameters.params, std::max(plan.tensors[ti].stored_level, 0), fresh[ti]);
  };
  // Columns of each distributed tensor a rank holds beyond its own: [t][r][column].
  std::vector<std::vector<std::vector<char>>> fetched(T);
  auto fetch = [&](std::size_t k, model::TensorId t, std::size_t r, std::int64_t c, std::int64_t per_column) {
    const auto ti = static_cast<std::size_t>(t);
    const TensorSplit& s = p.tensors[ti];
    const int owner = s.owner(c);
    if (owner == static_cast<int>(r)) return;
    auto& f = fetched[ti];
    if (f.empty()) f.assign(P, std::vector<char>(static_cast<std::size_t>(s.width), 0));
    char& got = f[r][static_cast<std::size_t>(c)];
    if (got) return;
    got = 1;
    const std::int64_t bytes = per_column * ct_bytes(t);
    sh[r].node_received[k] += bytes;
    sh[static_cast<std::size_t>(owner)].node_sent[k] += bytes;
    sh[r].tensor[ti] += static_cast<double>(per_column) / static_cast<double>(model::numel(g.tensors[ti].shape));
  };
  for (std::size_t k = 0; k < K; ++k) {
    const model::Node& n = g.nodes[k];
    const TensorSplit& ys = p.tensors[static_cast<std::size_t>(n.outputs[0])];
    switch (p.nodes[k]) {
      case NodeSplit::Spatial: {
        const model::Shape& y = g.tensors[static_cast<std::size_t>(n.outputs[0])].shape;
        for (std::size_t r = 0; r < P; ++r) {
          const auto [w0, w1] = ys.columns(static_cast<int>(r));
          sh[r].node[k] = own_fraction(ys, static_cast<int>(r));
          if (w0 >= w1) continue;
          for (std::size_t i = 0; i < n.inputs.size(); ++i) {
            const model::TensorId t = n.inputs[i];
            if (!model::is_activation(g, t) || !p.tensors[static_cast<std::size_t>(t)].distributed) continue;
            const model::Shape& x = g.tensors[static_cast<std::size_t>(t)].shape;
            const auto rm = row_map(g, n, i), cm = column_map(g, n, i);
            if (!rm || !cm) continue;
            const std::int64_t rows = std::clamp<std::int64_t>(rm->end(y[1]), 0, x[1]) - std::clamp<std::int64_t>(rm->begin(0), 0, x[1]);
            const std::int64_t cb = std::clamp<std::int64_t>(cm->begin(w0), 0, x[2]);
            const std::int64_t ce = std::clamp<std::int64_t>(cm->end(w1), 0, x[2]);
            for (std::int64_t c = cb; c < ce; ++c) fetch(k, t, r, c, x[0] * std::max<std::int64_t>(rows, 0));
          }
        }
        break;
      }
      case NodeSplit::Inherit:
        for (std::size_t r = 0; r < P; ++r) sh[r].node[k] = own_fraction(ys, static_cast<int>(r));
        break;
      case NodeSplit::Reduce: {
        const model::TensorId x = model::first_activation_input(g, n);
        const std::int64_t out = model::numel(g.tensors[static_cast<std::size_t>(n.outputs[0])].shape);
        for (std::size_t r = 0; r < P; ++r) {
          sh[r].node[k] = own_fraction(p.tensors[static_cast<std::size_t>(x)], static_cast<int>(r));
          if (r == 0 || sh[r].node[k] == 0) continue;
          const std::int64_t bytes =
              out * ckks::serialized_ciphertext_bytes(plan.parameters.params, std::max(plan.nodes[k].output_level, 0), false);
          sh[r].node_sent[k] += bytes;
          sh[0].node_received[k] += bytes;
        }
        break;
      }
      case NodeSplit::Root:
        sh[0].node[k] = 1.0;
        for (model::TensorId t : n.inputs) {
          if (!model::is_activation(g, t)) continue;
          const TensorSplit& s = p.tensors[static_cast<std::size_t>(t)];
          if (!s.distributed) continue;
          const std::int64_t per_column = model::numel(g.tensors[static_cast<std::size_t>(t)].shape) / s.width;
          for (std::int64_t c = 0; c < s.width; ++c) fetch(k, t, 0, c, per_column);
        }
        break;
    }
  }
  for (auto& s : sh) {
    for (double& f : s.tensor) f = std::min(f, 1.0);
    // A tensor that holds other tensors' ciphertexts (data movement, a fused Relu) is a
    // view of them: the halos fetched for a reader of either land in the same group, and
    // the footprint replays them as one storage. Every member of such a set holds the
    // most any member does (to a fixpoint: views of views).
    for (bool changed = true; changed;) {
      changed = false;
      for (std::size_t k = 0; k < K; ++k) {
        const auto y = static_cast<std::size_t>(g.nodes[k].outputs[0]);
        for (model::TensorId a : plan.tensors[y].aliases) {
          const auto ai = static_cast<std::size_t>(a);
          const double m = std::max(s.tensor[y], s.tensor[ai]);
          if (s.tensor[y] != m || s.tensor[ai] != m) changed = true;
          s.tensor[y] = s.tensor[ai] = m;
        }
      }
    }
    for (std::size_t k = 0; k < K; ++k) {
      s.bytes_sent += s.node_sent[k];
      s.bytes_received += s.node_received[k];
    }
  }
  return sh;
}

DistributedEstimate predict_distributed(const model::Graph& g, const EncryptedPlan& plan, const Partition& p,
                                        const FootprintOptions& fo, const TimeEstimate* one_process,
                                        const LinkModel& link) {
  DistributedEstimate est;
  est.ranks = p.ranks;
  est.shares = rank_shares(g, plan, p);
  const std::size_t K = g.nodes.size();
  for (const RankShare& s : est.shares) {
    FootprintOptions f = fo;
    f.tensor_share = s.tensor;
    f.node_share = s.node;
    const std::int64_t peak = predict_footprint(g, plan, f).peak_bytes;
    est.rank_peak_bytes.push_back(peak);
    est.peak_bytes = std::max(est.peak_bytes, peak);
    est.bytes_exchanged += s.bytes_sent;
  }
  // Exchanges: two per step (requests, ciphertexts), one more per reduction; none on one rank.
  std::vector<std::int64_t> steps(K, 0);
  for (const StreamStep& st : plan.steps) ++steps[static_cast<std::size_t>(st.node)];
  // Per exchange: the all-to-all of sizes, then messages only where there are bytes:
  // a slab's two neighbours (spatial), every rank to or from rank 0 (root, reduce).
  const double sizes = link.latency_seconds * ceil_log2(p.ranks);
  auto messages = [&](NodeSplit ns) {
    switch (ns) {
      case NodeSplit::Spatial: return std::min(2, p.ranks - 1);
      case NodeSplit::Inherit: return 0;
      case NodeSplit::Reduce:
      case NodeSplit::Root: return p.ranks - 1;
    }
    return p.ranks - 1;
  };
  est.node_compute_seconds.assign(K, 0.0);
  est.node_exchange_seconds.assign(K, 0.0);
  for (std::size_t k = 0; k < K; ++k) {
    double share = 0;
    std::int64_t busiest = 0;
    for (const RankShare& s : est.shares) {
      share = std::max(share, s.node[k]);
      busiest = std::max({busiest, s.node_sent[k], s.node_received[k]});
    }
    if (p.ranks > 1) {
      const std::int64_t exchanges = 2 * steps[k] + (p.nodes[k] == NodeSplit::Reduce ? 1 : 0);
      est.exchanges += exchanges;
      const double per_exchange = sizes + link.latency_seconds * messages(p.nodes[k]);
      est.node_exchange_seconds[k] =
          static_cast<double>(exchanges) * per_exchange + static_cast<double>(busiest) / link.bytes_per_second;
    }
    if (one_process) est.node_compute_seconds[k] = one_process->node_seconds.at(k) * share;
    est.compute_seconds += est.node_compute_seconds[k];
    est.exchange_seconds += est.node_exchange_seconds[k];
  }
  if (one_process) {
    // Each rank encrypts its own input columns; rank 0 decrypts the outputs.
    double input_share = 0;
    for (int r = 0; r < p.ranks; ++r) {
      for (model::TensorId t : g.inputs) input_share = std::max(input_share, own_fraction(p.tensors[static_cast<std::size_t>(t)], r));
    }
    est.compute_seconds += one_process->encrypt_seconds * input_share + one_process->decrypt_seconds;
  }
  est.batch_seconds = est.compute_seconds + est.exchange_seconds;
  return est;
}

int choose_rank_groups(const model::Graph& g, const EncryptedPlan& plan, int ranks, std::int64_t batches,
                       std::int64_t bytes_per_rank, const FootprintOptions& fo) {
  if (ranks < 1) throw std::invalid_argument("choose_rank_groups: ranks must be >= 1");
  for (int groups = ranks; groups > 1; --groups) {
    if (ranks % groups != 0 || groups > batches) continue;
    if (bytes_per_rank <= 0) return groups;
    const Partition p = partition_columns(g, plan, ranks / groups);
    if (predict_distributed(g, plan, p, fo, nullptr).peak_bytes <= bytes_per_rank) return groups;
  }
  return 1;
}

}  // namespace heinfer::plan
