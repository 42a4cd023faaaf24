#include "model/shape_inference.h"

#include "model/constant_eval.h"
#include "model/constant_folding.h"
#include "model/element_map.h"
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

void set_output(InferContext& c, Node& n, std::size_t inputs, Shape shape, OpParams params) {
  n.inputs.resize(inputs);
  keep_first_output(c, n);
  output(c.g, n).shape = std::move(shape);
  n.params = std::move(params);
}

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

void infer_node(InferContext& c, Node& n) {
  switch (n.op) {
    case OpType::Conv: infer_conv(c, n); return;
    case OpType::MaxPool:
    case OpType::AveragePool:
    case OpType::GlobalAveragePool: infer_pool(c, n); return;
    case OpType::Gemm: infer_gemm(c, n); return;
    case OpType::MatMul: infer_matmul(c, n); return;
    case OpType::Neg: negate_as_mul(c, n); [[fallthrough]];
    case OpType::Add:
    case OpType::Sub:
    case OpType::Mul:
    case OpType::Div: infer_binary(c, n); return;
    case OpType::Pow: infer_pow(c, n); return;
    case OpType::BatchNormalization: infer_batchnorm(c, n); return;
    case OpType::Relu:
    case OpType::Clip:
    case OpType::LeakyRelu:
    case OpType::Sigmoid:
    case OpType::Tanh:
    case OpType::HardSigmoid:
    case OpType::HardSwish:
    case OpType::Softplus:
    case OpType::Erf:
    case OpType::Exp:
    case OpType::Log:
    case OpType::Sqrt:
    case OpType::Floor:
    case OpType::Ceil: infer_activation(c, n); return;
    case OpType::Softmax:
    case OpType::LogSoftmax: infer_softmax(c, n); return;
    case OpType::Flatten: infer_flatten(c, n); return;
    case OpType::Reshape: infer_reshape(c, n); return;
    case OpType::Transpose: infer_transpose(c, n); return;
    case OpType::Concat: infer_concat(c, n); return;
    case OpType::Pad: infer_pad(c, n); return;
    case OpType::Identity:
    case OpType::Dropout: infer_identity(c, n); return;
    case OpType::Gather: infer_gather(c, n); return;
    case OpType::Slice: infer_slice(c, n); return;
    case OpType::Squeeze:
    case OpType::Unsqueeze: infer_squeeze(c, n); return;
    case OpType::Expand: infer_expand(c, n); return;
    case OpType::Cast: infer_cast(c, n); return;
    case OpType::ReduceMean: infer_reduce_mean(c, n); return;
    case OpType::Resize:
    case OpType::Upsample: infer_resize(c, n); return;
    case OpType::Constant:
      throw ModelError(node_label(n) + ": Constant nodes are converted at import");
    case OpType::Split: throw ModelError(node_label(n) + ": Split is expanded into slices before this point");
    case OpType::Shape:
    case OpType::Size:
    case OpType::ConstantOfShape:
    case OpType::Range:
    case OpType::Equal:
    case OpType::Less:
    case OpType::Greater:
    case OpType::Not:
    case OpType::Where: break;
  }
  throw ModelError(node_label(n) + ": " + std::string(op_name(n.op)) +
                   " of a data-dependent tensor is not supported (it is evaluated when its inputs are "
                   "known at load time)");
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

  std::vector<bool> folded(g.nodes.size(), false);
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    if (g.nodes[k].op == OpType::Split) {
      folded.insert(folded.begin() + static_cast<std::ptrdiff_t>(k) + 1, detail::expand_split(c, k), false);
    } else if ((g.nodes[k].op == OpType::HardSigmoid || g.nodes[k].op == OpType::HardSwish) &&
               activation_input_count(g, g.nodes[k]) > 0) {
      folded.insert(folded.begin() + static_cast<std::ptrdiff_t>(k) + 1, detail::expand_hard_activation(c, k), false);
    } else if (g.nodes[k].op == OpType::Pow) {
      folded.insert(folded.begin() + static_cast<std::ptrdiff_t>(k) + 1, detail::expand_power(c, k), false);
    } else if (g.nodes[k].op == OpType::Gemm && activation_input_count(g, g.nodes[k]) > 1) {
      folded.insert(folded.begin() + static_cast<std::ptrdiff_t>(k) + 1,
                    detail::expand_gemm_activation_bias(c, k), false);
    }
    Node& n = g.nodes[k];
    if (!std::holds_alternative<std::monostate>(n.params)) continue;
    // Known at load time: constants, and shapes of activations (the batch kept symbolic).
    const bool shape_of =
        (n.op == OpType::Shape || n.op == OpType::Size) && !n.inputs.empty() && is_activation(g, n.inputs[0]);
    if (shape_of || activation_input_count(g, n) == 0) {
      fold_node(g, n, shape_of);
      detail::keep_first_output(c, n);
      folded[k] = true;
      continue;
    }
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const TensorId t = n.inputs[i];
      if (t == kNoTensor || !g.tensors[static_cast<std::size_t>(t)].is_constant) continue;
      if (!g.tensors[static_cast<std::size_t>(t)].batch_coeff.empty() && !(n.op == OpType::Reshape && i == 1) &&
          !(n.op == OpType::Expand && i == 1) && !(n.op == OpType::Resize && i == 3)) {
        throw ModelError(node_label(n) + ": input " + std::to_string(i) + " ('" +
                         g.tensors[static_cast<std::size_t>(t)].name +
                         "') depends on the batch size; only a Reshape or Expand target or Resize sizes may");
      }
    }
    detail::infer_node(c, n);
    numel(detail::output(g, n).shape);
    std::int64_t entries = 0;
    if (const auto* m = std::get_if<ElementMapParams>(&n.params)) entries = static_cast<std::int64_t>(m->source.size());
    if (const auto* m = std::get_if<LinearMapParams>(&n.params)) entries = static_cast<std::int64_t>(m->source.size());
    g.load_map_entries += entries;
    if (g.load_map_entries > kMaxLoadMapEntries) {
      throw ModelError(node_label(n) + ": the element maps of the model's data movement need more than " +
                       std::to_string(kMaxLoadMapEntries) + " entries (the limit of a load)");
    }
  }
  std::size_t kept = 0;
  for (std::size_t k = 0; k < g.nodes.size(); ++k) {
    if (folded[k]) continue;
    if (kept != k) g.nodes[kept] = std::move(g.nodes[k]);
    ++kept;
  }
  g.nodes.resize(kept);
  for (TensorId t : g.outputs) {
    if (g.tensors[static_cast<std::size_t>(t)].is_constant) {
      throw ModelError("graph output '" + g.tensors[static_cast<std::size_t>(t)].name +
                       "' is a constant (it does not depend on the input); not supported");
    }
  }
}

}  // namespace heinfer::model
