// Predicting a distributed run before anything runs (`heinfer inspect --ranks P`): what
// each rank holds, sends and computes under the column partition (plan/partition.h),
// and the time of one batch on P ranks.
//
// Shares. A rank holds its own columns of every distributed tensor plus the halo columns
// its spatial nodes read in neighbours' slabs (fetched once, at the first reader that
// needs them, over all rows); rank 0 holds every tensor a root node reads (gathered) and
// the outputs of reductions and root nodes. A node's work on a rank is its share of the
// node's output columns (spatial, inherit), of its input elements (reduce: the partial
// map), or all of it on rank 0 (root). The footprint is replayed per rank with those
// shares (FootprintOptions::tensor_share, node_share); the peak of the run is the largest
// rank's.
//
// Communication model (stated, not measured here): every step of the schedule is two
// all-to-all exchanges (requests, then ciphertexts; a reduction adds one), each an
// MPI_Alltoall of sizes (⌈log₂ P⌉ latencies, Bruck's algorithm) and point-to-point
// messages only where there are bytes: a latency for each of a slab's two neighbours
// (spatial nodes), P − 1 for a gather on rank 0 or a reduction, none for nodes that
// keep their input's owners; the bytes go at the link's bandwidth; a rank's sends and
// receives overlap (full duplex), so a step's transfer time is its busiest rank's larger
// direction divided by the bandwidth. Ciphertexts travel serialized as stored: at their
// stored level, compact when fresh from the client (ckks::serialized_ciphertext_bytes). The ranks run in lockstep: a node takes its slowest rank's
// compute time plus its exchanges, with no overlap of the two (the executor does not
// overlap them yet). Compute per rank is the one-process time model's node time
// (plan/cost_model.h) × the rank's work share.
#pragma once

#include <cstdint>
#include <vector>

#include "model/graph.h"
#include "plan/cost_model.h"
#include "plan/encrypted_plan.h"
#include "plan/footprint.h"
#include "plan/partition.h"

namespace heinfer::plan {

/// The network between ranks. Defaults: 10 Gb/s Ethernet (1.25·10⁹ bytes/s) and 50 µs
/// per message (TCP through the kernel); shared memory on one node is ~10× better.
struct LinkModel {
  double latency_seconds = 50e-6;
  double bytes_per_second = 1.25e9;
};

/// One rank's share (file comment).
struct RankShare {
  std::vector<double> tensor;  ///< per tensor: fraction of its elements held
  std::vector<double> node;    ///< per node: fraction of its work done
  std::vector<std::int64_t> node_sent, node_received;  ///< per node: bytes of its exchanges
  std::int64_t bytes_sent = 0, bytes_received = 0;     ///< their sums
};

struct DistributedEstimate {
  int ranks = 1;
  std::vector<RankShare> shares;                ///< per rank
  std::vector<std::int64_t> rank_peak_bytes;    ///< per rank: footprint peak (ciphertexts)
  std::int64_t peak_bytes = 0;                  ///< the largest rank's
  std::int64_t bytes_exchanged = 0;             ///< Σ over ranks of bytes sent
  std::int64_t exchanges = 0;                   ///< all-to-all exchanges per batch
  /// Per node, one batch: the slowest rank's compute and the node's exchanges.
  std::vector<double> node_compute_seconds, node_exchange_seconds;
  double compute_seconds = 0;   ///< Σ node compute + encryption and decryption shares
  double exchange_seconds = 0;  ///< Σ node exchanges
  double batch_seconds = 0;     ///< compute + exchange
};

/// Per-rank shares and bytes of `p` (file comment). Throws std::invalid_argument when
/// the partition does not match g.
std::vector<RankShare> rank_shares(const model::Graph& g, const EncryptedPlan& plan, const Partition& p);

/// The prediction of one batch of g on p.ranks ranks: per-rank footprints (options `fo`,
/// shares filled in here), bytes, and, when `one_process` (the time model's prediction
/// for a single process at the same parameters) is given, the time under `link`.
DistributedEstimate predict_distributed(const model::Graph& g, const EncryptedPlan& plan, const Partition& p,
                                        const FootprintOptions& fo, const TimeEstimate* one_process,
                                        const LinkModel& link = {});

/// The rank groups of a distributed run (`--rank-groups auto`) of `batches` encrypted
/// batches on `ranks` ranks: the most groups G (batches in flight, each on ranks / G
/// ranks: the fewer ranks share a batch, the less they exchange and wait) such that G
/// divides `ranks`, G <= batches, and the largest rank's ciphertext peak on ranks / G
/// ranks (predict_distributed with `fo`) is at most `bytes_per_rank` (0: no bound);
/// 1 when none fits (the budget then spills to the tier as in any run). Throws
/// std::invalid_argument when ranks < 1.
int choose_rank_groups(const model::Graph& g, const EncryptedPlan& plan, int ranks, std::int64_t batches,
                       std::int64_t bytes_per_rank, const FootprintOptions& fo);

}  // namespace heinfer::plan
