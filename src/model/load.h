// The model-loading pipeline: import, then the graph passes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <vector>

#include "model/graph.h"

namespace heinfer::model {

struct LoadOptions {
  bool fold_batchnorm = true;  ///< fold BatchNormalization into the preceding Conv/Gemm
  bool fuse_residual = true;   ///< fuse residual Adds into their Conv (model/residual_fusion.h)
  /// Replaces the per-sample shape of the (single) graph input before shape inference,
  /// e.g. {3, 96, 96} to run an image model at another resolution. Must have the rank
  /// of the declared input shape.
  std::optional<std::vector<std::int64_t>> input_shape;
};

/// Runs, in order: the input-shape override (optional), fold_constants, infer_shapes,
/// remove_identities, fold_batchnorm (optional), fuse_residual_adds (optional),
/// remove_dead_nodes. The result has nodes
/// in topological order, every node with normalized params and one output, and
/// per-sample shapes on all activations. Throws ModelError, also when the graph cannot
/// take an overridden input shape (a Reshape to a fixed size, a Gemm whose K no longer
/// matches, ...), naming the shape and the node.
void prepare_graph(Graph& g, const LoadOptions& options = {});

/// read_onnx_file + import_onnx + prepare_graph. Throws ModelError (never crashes on a
/// malformed file).
Graph load_model(const std::filesystem::path& path, const LoadOptions& options = {});

}  // namespace heinfer::model
