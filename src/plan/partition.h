// The spatial partition of a distributed run (`heinfer run --distributed` under MPI):
// which rank owns which ciphertext of every activation and how each node is computed
// across ranks. Pure plan data, computed from the graph and the plan, the same on every
// rank, so that a rank knows every other rank's share without asking.
//
// Owner computes. Each rank owns a slab of columns of every per-sample [C, H, W]
// activation (columns [W·r/P, W·(r+1)/P) on rank r of P) and computes those output
// elements of every spatial node; the input elements its windows read in neighbours'
// slabs (halos) are fetched from their owners before the step. This is the domain
// decomposition with halo (ghost-cell) exchange of stencil codes, applied to the
// windows of a CNN as in spatially parallel convolutions (Dryden et al., "Improving
// Strong-Scaling of CNN Training by Exploiting Finer-Grained Parallelism", IPDPS 2019,
// §III). Linear nodes that mix all elements (Gemm, MatMul, GlobalAveragePool after the
// slabs) are reduced: each rank computes the map of its own elements, rank 0 adds the P
// partial outputs (the map is linear; the constant terms are added on rank 0 only).
// What none of these covers runs on rank 0 after its inputs are gathered there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/graph.h"
#include "plan/encrypted_plan.h"

namespace heinfer::plan {

/// How the elements of one tensor are spread over the ranks. Distributed: element e
/// (row-major) lies in column e mod `width` of a [C, H, W] layout, owned by the rank
/// whose [bounds[r], bounds[r + 1]) holds that column; a Flatten / Reshape of such a
/// tensor keeps the rule (same element order). Otherwise every element is rank 0's.
struct TensorSplit {
  bool distributed = false;
  std::int64_t width = 1;
  std::vector<std::int64_t> bounds;  ///< ranks + 1 column bounds when distributed

  int owner(std::int64_t e) const;
  /// The columns [begin, end) rank r owns (all columns: [0, width) when not distributed
  /// and r = 0; empty for other ranks).
  std::pair<std::int64_t, std::int64_t> columns(int r) const;
};

/// How a node runs across the ranks.
enum class NodeSplit {
  Spatial,  ///< each rank computes its own output columns, halos fetched first
  Inherit,  ///< element order kept (Flatten, Reshape, Identity, element-wise rounds): each rank its own elements
  Reduce,   ///< linear map of distributed inputs: partial outputs on every rank, summed on rank 0
  Root,     ///< on rank 0 only, its inputs gathered there first
};

struct Partition {
  int ranks = 1;
  std::vector<TensorSplit> tensors;  ///< parallel to Graph::tensors (constants: rank 0's)
  std::vector<NodeSplit> nodes;      ///< parallel to Graph::nodes
};

/// The partition of g's activations over `ranks` ranks (file comment). Graph inputs and
/// the outputs of spatial nodes (row_map and column_map for every encrypted input, a
/// [C, H, W] output) are distributed by columns; a Final Softmax runs on rank 0. Throws
/// std::invalid_argument when ranks < 1 or the plan does not match g.
Partition partition_columns(const model::Graph& g, const EncryptedPlan& plan, int ranks);

/// The client round requests of a distributed run, per node (parallel to Graph::nodes):
/// every rank runs a round node's rounds over the elements of each step it owns (all of
/// them on rank 0 for a root node), in chunks of NodePlan::round_items, each chunk
/// NodePlan::rounds_per_chunk requests; summed over the ranks. With one rank it equals
/// NodePlan::rounds. (A server announces these counts to its client.)
std::vector<std::int64_t> round_requests(const model::Graph& g, const EncryptedPlan& plan, const Partition& p);

/// The split of every node, as "name: Spatial" lines (for `inspect` and test messages).
std::string describe(const model::Graph& g, const Partition& p);

}  // namespace heinfer::plan
