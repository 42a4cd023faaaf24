// Streaming across consecutive layers: the order in which an executor computes
// bands of output rows of a chain of spatial nodes, so that the intermediate tensors of
// the chain never exist whole — only a window of rows each (the rows a reader still
// needs: its kernel height plus one band), so that peak memory follows the width of the
// tensors and not the image resolution.
//
// This is depth-first, demand-driven line buffering, the schedule of fused-layer CNN
// accelerators (Alwani et al., "Fused-Layer CNN Accelerators", MICRO 2016, §3) applied
// to rows of [C, H, W] activations: to compute a band of a node's output rows, first
// compute the input rows it reads (recursively, as far as they are not computed yet),
// then release every input row no reader of the segment needs any more.
//
// Pure plan data: computed from the graph alone, shared by the encrypted executor (which
// runs it) and the memory predictor (which replays it for byte counts).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "model/graph.h"

namespace heinfer::plan {

/// How a band of output rows of a node maps to rows of one of its inputs (dimension 1 of
/// per-sample [C, H, W] tensors): output rows [a, b) read input rows
///   [max(0, a·stride − offset), min(in_rows, (b − 1)·stride − offset + extent)),
/// or all of the input's rows when `all` (a broadcast input with H = 1).
struct RowMap {
  std::int64_t stride = 1, offset = 0, extent = 1, in_rows = 0;
  bool all = false;
  std::int64_t begin(std::int64_t a) const;  ///< first input row read by output row a
  std::int64_t end(std::int64_t b) const;    ///< end of the input rows read by rows [.., b)
};

/// The row map of non-constant input `input` of node n, or nullopt when n cannot run on
/// bands of rows: its output or that input is not per-sample [C, H, W], or its op is not
/// one of Conv, AveragePool, MaxPool, BatchNormalization, Add/Sub/Mul/Div (same rows or
/// H = 1 broadcast), Relu, Clip, LeakyRelu, Identity/Dropout.
std::optional<RowMap> row_map(const model::Graph& g, const model::Node& n, std::size_t input);
/// The same map over columns (dimension 2 of per-sample [C, H, W] tensors; `in_rows` is
/// then the input's W): which input columns a slab of output columns reads, for the
/// column partition of a distributed run (plan/partition.h).
std::optional<RowMap> column_map(const model::Graph& g, const model::Node& n, std::size_t input);

/// One step of a streamed schedule: node `node` computes its output rows
/// [row_begin, row_end) (whole nodes: all rows of the output, or [0, 0) for outputs that
/// are not [C, H, W]). After the step, for every (t, r) in `release`, rows [0, r) of
/// tensor t are read by nobody any more (r = its H: the whole tensor).
struct StreamStep {
  std::int64_t node = 0;
  std::int64_t row_begin = 0, row_end = 0;
  bool streamed = false;  ///< a band of a streamed node (else the node runs whole)
  bool first = true;      ///< the node's first step
  bool last = true;       ///< the node's last step
  /// The first node of the streamed segment the step belongs to; -1 for a whole node.
  std::int64_t segment = -1;
  std::vector<std::pair<model::TensorId, std::int64_t>> release;
};

/// Options of stream_schedule.
struct StreamOptions {
  /// Elements (ciphertexts) per band at least: a node's band is the smallest number of
  /// whole rows with C·W·rows ≥ band_elements (1 row when a row is that large already).
  std::int64_t band_elements = 1;
  /// Cuts: node indices where a streamed segment begins even when the node before it is
  /// streamable (ascending). The tensors produced before a cut and read after it are
  /// computed whole first (a memory-tiered run writes them to its tier once, instead of
  /// keeping the windows of every layer of a long segment alive at once:
  /// plan/segment_cuts.h).
  std::vector<std::int64_t> segment_starts;
};

/// The schedule of all nodes of g (in a dependency order). `streamable[k]`: the executor
/// can run node k on bands of rows (and row_map(g, node k, i) is set for its
/// non-constant inputs). Maximal runs of consecutive streamable nodes (at least two),
/// split at options.segment_starts, form segments; a tensor produced in a segment and
/// read after it (or a graph output) is a segment output: computed whole and never
/// released here. Every other tensor of a segment is released row by row, never before
/// its rows are produced; so is a tensor that exists whole before a segment (a graph
/// input, an earlier node's or segment's output) when all its readers are in that
/// segment and it is no graph output. The last band of
/// a node runs after the producer and the other readers of every input it is the last
/// reader of (graph order) are complete, so that freeing tensors after their last reader
/// (model::activations_to_free) stays valid. Throws std::invalid_argument when
/// streamable has the wrong size or segment_starts holds a node index out of range.
std::vector<StreamStep> stream_schedule(const model::Graph& g, const std::vector<bool>& streamable,
                                        const StreamOptions& options = {});

/// Per tensor: a graph input that only streamed steps read (and no graph output), so an
/// executor may produce (encrypt) its rows on demand: a step of node n reads rows
/// [.., row_map(g, n, i)->end(step.row_end)) of its input i.
std::vector<bool> inputs_on_demand(const model::Graph& g, const std::vector<StreamStep>& steps);

}  // namespace heinfer::plan
