#include "model/shape_inference.h"

#include "model/infer_common.h"

namespace heinfer::model {
namespace detail {

bool has_input(const Node& n, std::size_t i) {
  return i < n.inputs.size() && n.inputs[i] != kNoTensor;
}

const Tensor& input(const Graph& g, const Node& n, std::size_t i) {
  if (!has_input(n, i)) {
    throw ModelError(node_label(n) + ": missing required input " + std::to_string(i));
  }
  return g.tensors[static_cast<std::size_t>(n.inputs[i])];
}

const Tensor& constant_input(const Graph& g, const Node& n, std::size_t i, const char* what) {
  const Tensor& t = input(g, n, i);
  if (!t.is_constant) {
    throw ModelError(node_label(n) + ": input " + std::to_string(i) + " (" + what + ", '" +
                     t.name + "') must be a constant (initializer or Constant node)");
  }
  return t;
}

const Tensor& activation_input(const Graph& g, const Node& n, std::size_t i, const char* what) {
  const Tensor& t = input(g, n, i);
  if (t.is_constant) {
    throw ModelError(node_label(n) + ": input " + std::to_string(i) + " (" + what + ", '" +
                     t.name + "') is a constant but must be the data-dependent tensor");
  }
  return t;
}

void keep_first_output(InferContext& c, Node& n) {
  for (std::size_t i = 1; i < n.outputs.size(); ++i) {
    const TensorId t = n.outputs[i];
    if (t != kNoTensor && c.use_count[static_cast<std::size_t>(t)] > 0) {
      throw ModelError(node_label(n) + ": output " + std::to_string(i) + " ('" +
                       c.g.tensors[static_cast<std::size_t>(t)].name +
                       "') is used; only the first output is supported");
    }
  }
  n.outputs.resize(1);
}

Tensor& output(Graph& g, const Node& n) { return g.tensors[static_cast<std::size_t>(n.outputs[0])]; }

std::int64_t normalize_axis(std::int64_t axis, std::int64_t rank, const std::string& context,
                            bool allow_rank) {
  const std::int64_t hi = allow_rank ? rank : rank - 1;
  if (axis < -rank || axis > hi) {
    throw ModelError(context + ": axis " + std::to_string(axis) + " is out of range for rank " +
                     std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

void throw_batch_axis(const Node& n, const std::string& what) {
  throw ModelError(node_label(n) + ": " + what +
                   "; the batch (dim 0) must stay the first dim and be independent per sample");
}

}  // namespace detail

void infer_shapes(Graph& g) {
  detail::InferContext c{g, std::vector<int>(g.tensors.size(), 0)};
  for (const Node& n : g.nodes) {
    for (TensorId t : n.inputs) {
      if (t != kNoTensor) ++c.use_count[static_cast<std::size_t>(t)];
    }
  }
  for (TensorId t : g.outputs) ++c.use_count[static_cast<std::size_t>(t)];

  for (Node& n : g.nodes) {
    if (!std::holds_alternative<std::monostate>(n.params)) continue;
    if (activation_input_count(g, n) == 0) {
      throw ModelError(node_label(n) + ": has no data-dependent input (run constant folding first)");
    }
    switch (n.op) {
      case OpType::Conv: detail::infer_conv(c, n); break;
      case OpType::MaxPool:
      case OpType::AveragePool:
      case OpType::GlobalAveragePool: detail::infer_pool(c, n); break;
      case OpType::Gemm: detail::infer_gemm(c, n); break;
      case OpType::MatMul: detail::infer_matmul(c, n); break;
      case OpType::Add:
      case OpType::Sub:
      case OpType::Mul:
      case OpType::Div: detail::infer_binary(c, n); break;
      case OpType::Pow: detail::infer_pow(c, n); break;
      case OpType::BatchNormalization: detail::infer_batchnorm(c, n); break;
      case OpType::Relu:
      case OpType::Clip:
      case OpType::LeakyRelu: detail::infer_activation(c, n); break;
      case OpType::Softmax:
      case OpType::LogSoftmax: detail::infer_softmax(c, n); break;
      case OpType::Flatten: detail::infer_flatten(c, n); break;
      case OpType::Reshape: detail::infer_reshape(c, n); break;
      case OpType::Transpose: detail::infer_transpose(c, n); break;
      case OpType::Concat: detail::infer_concat(c, n); break;
      case OpType::Pad: detail::infer_pad(c, n); break;
      case OpType::Identity:
      case OpType::Dropout: detail::infer_identity(c, n); break;
      case OpType::Constant:
        throw ModelError(node_label(n) + ": Constant nodes are converted at import");
    }
    numel(detail::output(g, n).shape);
  }
  for (TensorId t : g.outputs) {
    if (g.tensors[static_cast<std::size_t>(t)].is_constant) {
      throw ModelError("graph output '" + g.tensors[static_cast<std::size_t>(t)].name +
                       "' is a constant (it does not depend on the input); not supported");
    }
  }
}

}  // namespace heinfer::model
