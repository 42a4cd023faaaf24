// The graph IR: plain data, shared by the importer, the passes and the executors.
//
// Designed for batch-axis packing (one ciphertext per tensor element, its slots holding
// that element for every image of the batch): activations carry their per-sample shape
// (batch excluded), constants their full shape and values as doubles, and nodes are kept
// in topological order so an executor is a single loop over Graph::nodes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/attribute.h"
#include "model/op_params.h"
#include "model/op_type.h"
#include "model/shape.h"

namespace heinfer::model {

/// Index into Graph::tensors.
using TensorId = std::int32_t;
/// Marks an omitted optional input (ONNX empty input name).
inline constexpr TensorId kNoTensor = -1;

/// Element type a tensor had in the file (computation is always in float64).
enum class DataType { Float32, Float64, Int64, Bool };

/// A value in the graph: an activation or a constant.
struct Tensor {
  std::string name;
  /// Activation: per-sample shape (ONNX dims[1:]); constant: full ONNX shape.
  Shape shape;
  bool is_constant = false;
  DataType dtype = DataType::Float32;
  /// Constant values in row-major order (numel(shape) entries); empty for activations.
  std::vector<double> data;
  /// Shape arithmetic on the dynamic batch (int64 constants computed from Shape/Size of an
  /// activation): element i is data[i] + batch_coeff[i] * N, N the batch size of the run.
  /// Empty when no element depends on N.
  std::vector<double> batch_coeff;
};

/// One operator application.
struct Node {
  std::string name;  ///< ONNX node name; "<op>_<index>" when the file has none
  OpType op = OpType::Identity;
  std::vector<TensorId> inputs;   ///< kNoTensor for an omitted optional input
  std::vector<TensorId> outputs;  ///< after shape inference: exactly one output
  AttributeMap attributes;        ///< raw ONNX attributes
  OpParams params;                ///< normalized parameters (std::monostate before inference)
};

/// A model: tensors, nodes in topological order, activation inputs and outputs.
struct Graph {
  std::vector<Tensor> tensors;
  std::vector<Node> nodes;
  std::vector<TensorId> inputs;   ///< activation inputs; all share one batch size
  std::vector<TensorId> outputs;  ///< graph outputs, in ONNX order
  std::int64_t opset = 0;         ///< default-domain opset version of the model
  /// Static dim 0 of the first input in the file (0 when symbolic). A Reshape whose target
  /// dim 0 equals it keeps the batch (models exported with a fixed batch of 1).
  std::int64_t declared_batch = 0;
  /// Elements read and written by load-time evaluation so far (constant inputs plus
  /// outputs of every node folded), bounded by kMaxLoadTimeElements (model/element_map.h).
  std::int64_t load_time_elements = 0;
  /// Entries of the maps built on activations so far (bounded by kMaxLoadMapEntries).
  std::int64_t load_map_entries = 0;
};

/// "node 'conv1' (Conv)" - the prefix of every node-related error message.
std::string node_label(const Node& node);

/// Appends a constant tensor; returns its id.
TensorId add_constant(Graph& g, std::string name, Shape shape, std::vector<double> data,
                      DataType dtype = DataType::Float32);

/// Appends an activation tensor (shape filled by shape inference); returns its id.
TensorId add_activation(Graph& g, std::string name, Shape per_sample_shape = {});

/// For every tensor, the indices of the nodes that read it (in node order).
std::vector<std::vector<int>> consumers(const Graph& g);

bool is_graph_output(const Graph& g, TensorId t);

/// Rewrites every read of `from` (node inputs and graph outputs) into `to`.
void replace_uses(Graph& g, TensorId from, TensorId to);

/// Whether t is an activation: present (not kNoTensor) and not a constant.
bool is_activation(const Graph& g, TensorId t);

/// Number of activation (non-constant) inputs of a node.
int activation_input_count(const Graph& g, const Node& node);

/// The node's first activation input (kNoTensor if it has none).
TensorId first_activation_input(const Graph& g, const Node& node);

}  // namespace heinfer::model
