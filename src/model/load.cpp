#include "model/load.h"

#include <onnx/onnx_pb.h>

#include "model/batchnorm_folding.h"
#include "model/constant_folding.h"
#include "model/error.h"
#include "model/identity_removal.h"
#include "model/onnx_import.h"
#include "model/residual_fusion.h"
#include "model/shape_inference.h"

namespace heinfer::model {
namespace {

/// Sets the per-sample shape of the single graph input (LoadOptions::input_shape).
void override_input_shape(Graph& g, const Shape& shape) {
  if (g.inputs.size() != 1) {
    throw ModelError("an input shape override needs a model with one input, this one has " +
                     std::to_string(g.inputs.size()));
  }
  Tensor& x = g.tensors[static_cast<std::size_t>(g.inputs[0])];
  if (shape.size() != x.shape.size()) {
    throw ModelError("input '" + x.name + "' has per-sample shape " + to_string(x.shape) +
                     "; the override " + to_string(shape) + " must have the same rank");
  }
  for (std::int64_t d : shape) {
    if (d <= 0) throw ModelError("input shape override " + to_string(shape) + ": dimensions must be positive");
  }
  x.shape = shape;
}

}  // namespace

void prepare_graph(Graph& g, const LoadOptions& options) {
  if (options.input_shape) override_input_shape(g, *options.input_shape);
  fold_constants(g);
  if (options.input_shape) {
    try {
      infer_shapes(g);
    } catch (const ModelError& e) {
      throw ModelError("the model cannot take the input shape " + to_string(*options.input_shape) + ": " +
                       e.what());
    }
  } else {
    infer_shapes(g);
  }
  remove_identities(g);
  if (options.fold_batchnorm) fold_batchnorm(g);
  if (options.fuse_residual) fuse_residual_adds(g);
  remove_dead_nodes(g);
}

Graph load_model(const std::filesystem::path& path, const LoadOptions& options) {
  Graph g = import_onnx(read_onnx_file(path));
  prepare_graph(g, options);
  return g;
}

}  // namespace heinfer::model
