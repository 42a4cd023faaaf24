#include "model/load.h"

#include <onnx/onnx_pb.h>

#include "model/batchnorm_folding.h"
#include "model/constant_folding.h"
#include "model/identity_removal.h"
#include "model/onnx_import.h"
#include "model/shape_inference.h"

namespace heinfer::model {

void prepare_graph(Graph& g, const LoadOptions& options) {
  fold_constants(g);
  infer_shapes(g);
  remove_identities(g);
  if (options.fold_batchnorm) fold_batchnorm(g);
  remove_dead_nodes(g);
}

Graph load_model(const std::filesystem::path& path, const LoadOptions& options) {
  Graph g = import_onnx(read_onnx_file(path));
  prepare_graph(g, options);
  return g;
}

}  // namespace heinfer::model
