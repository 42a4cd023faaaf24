// The model-loading pipeline: import, then the graph passes.
#pragma once

#include <filesystem>

#include "model/graph.h"

namespace heinfer::model {

struct LoadOptions {
  bool fold_batchnorm = true;  ///< fold BatchNormalization into the preceding Conv/Gemm
};

/// Runs, in order: fold_constants, infer_shapes, remove_identities, fold_batchnorm
/// (optional), remove_dead_nodes. The result has nodes in topological order, every node
/// with normalized params and one output, and per-sample shapes on all activations.
/// Throws ModelError.
void prepare_graph(Graph& g, const LoadOptions& options = {});

/// read_onnx_file + import_onnx + prepare_graph. Throws ModelError (never crashes on a
/// malformed file).
Graph load_model(const std::filesystem::path& path, const LoadOptions& options = {});

}  // namespace heinfer::model
