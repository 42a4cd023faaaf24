// The plaintext reference executor: runs a prepared graph in float64.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "model/graph.h"
#include "runtime/plain_tensor.h"

namespace heinfer::runtime {

struct PlainRunOptions {
  int threads = 0;  ///< OpenMP threads for the kernels; 0 keeps the OpenMP default
  /// Replaces nodes: called before each node with its index, inputs (as run_node_plain)
  /// and preallocated output; true means it computed the output. Empty: none replaced.
  std::function<bool(std::size_t, const std::vector<const PlainTensor*>&, PlainTensor&)> replace;
};

/// Runs `g` (prepared by model::prepare_graph / model::load_model) on one batch.
/// `inputs` has one tensor per graph input, in order, each with the input's per-sample
/// shape and the same batch (> 0). Activations are freed after their last use
/// (model::activations_to_free). Returns the graph outputs in order.
/// Throws model::ModelError on a shape/count mismatch or an unprepared graph.
std::vector<PlainTensor> run_plain(const model::Graph& g, std::vector<PlainTensor> inputs,
                                   const PlainRunOptions& options = {});

/// Runs a single prepared node: `inputs` parallel to node.inputs (nullptr for constants
/// and omitted inputs), `y` preallocated with the output shape and batch.
void run_node_plain(const model::Graph& g, const model::Node& node,
                    const std::vector<const PlainTensor*>& inputs, PlainTensor& y);

}  // namespace heinfer::runtime
