#include "model/analysis.h"

#include <algorithm>
#include <numeric>

namespace heinfer::model {
namespace {

bool nontrivial(double w) { return w != 0.0 && w != 1.0 && w != -1.0; }

bool any_nontrivial(const std::vector<double>& v, bool reciprocal = false) {
  return std::any_of(v.begin(), v.end(),
                     [&](double w) { return nontrivial(reciprocal && w != 0.0 ? 1.0 / w : w); });
}

const Tensor& in(const Graph& g, const Node& n, std::size_t i) {
  return g.tensors[static_cast<std::size_t>(n.inputs[i])];
}

std::int64_t out_numel(const Graph& g, const Node& n) {
  return numel(g.tensors[static_cast<std::size_t>(n.outputs[0])].shape);
}

/// The constant operand of an element-wise binary node, or nullptr when both are data.
const Tensor* constant_operand(const Graph& g, const Node& n) {
  for (std::size_t i = 0; i < 2 && i < n.inputs.size(); ++i) {
    if (in(g, n, i).is_constant) return &in(g, n, i);
  }
  return nullptr;
}

}  // namespace

std::string_view op_class_name(OpClass c) {
  switch (c) {
    case OpClass::Linear: return "linear";
    case OpClass::Polynomial: return "polynomial";
    case OpClass::ClientAided: return "client-aided";
  }
  return "?";
}

OpClass classify(const Node& node) {
  if (std::holds_alternative<SquareParams>(node.params) || std::holds_alternative<ProductParams>(node.params)) {
    return OpClass::Polynomial;
  }
  if (std::holds_alternative<ActivationParams>(node.params)) return OpClass::ClientAided;
  switch (node.op) {
    case OpType::Relu:
    case OpType::Clip:
    case OpType::LeakyRelu:
    case OpType::MaxPool:
    case OpType::Softmax:
    case OpType::LogSoftmax: return OpClass::ClientAided;
    default: return OpClass::Linear;
  }
}

int levels(const Graph& g, const Node& n) {
  if (std::holds_alternative<SquareParams>(n.params) || std::holds_alternative<ProductParams>(n.params)) return 1;
  if (classify(n) != OpClass::Linear) return 0;
  if (const auto* m = std::get_if<LinearMapParams>(&n.params)) return any_nontrivial(m->weight) ? 1 : 0;
  switch (n.op) {
    case OpType::Conv:
    case OpType::Gemm:
    case OpType::MatMul:
    case OpType::ReduceMean: return any_nontrivial(in(g, n, 1).data) ? 1 : 0;
    case OpType::BatchNormalization: return any_nontrivial(in(g, n, 1).data) ? 1 : 0;
    case OpType::Mul:
    case OpType::Div: {
      const Tensor* c = constant_operand(g, n);
      return c && any_nontrivial(c->data, n.op == OpType::Div) ? 1 : 0;
    }
    case OpType::AveragePool:
    case OpType::GlobalAveragePool: {
      const auto& p = std::get<PoolParams>(n.params);
      return numel(p.kernel) > 1 ? 1 : 0;
    }
    default: return 0;
  }
}

std::int64_t macs(const Graph& g, const Node& n) {
  if (std::holds_alternative<SquareParams>(n.params)) return out_numel(g, n);
  if (const auto* m = std::get_if<LinearMapParams>(&n.params)) return static_cast<std::int64_t>(m->source.size());
  switch (n.op) {
    case OpType::Conv: {
      const Shape& w = in(g, n, 1).shape;
      const std::int64_t residual = std::get<ConvParams>(n.params).residual ? 1 : 0;
      return out_numel(g, n) * (numel(Shape(w.begin() + 1, w.end())) + residual);
    }
    case OpType::Gemm:
    case OpType::MatMul: {
      const auto& p = std::get<GemmParams>(n.params);
      return p.outer * p.n * p.inner * p.k;
    }
    case OpType::Mul:
    case OpType::Div:
    case OpType::BatchNormalization: return out_numel(g, n);
    case OpType::AveragePool:
    case OpType::GlobalAveragePool:
      return out_numel(g, n) * numel(std::get<PoolParams>(n.params).kernel);
    default: return 0;
  }
}

GraphAnalysis analyze(const Graph& g) {
  GraphAnalysis a;
  a.nodes.resize(g.nodes.size());
  std::vector<int> tensor_segment(g.tensors.size(), -1);
  // Union-find over nodes to build connected segments.
  std::vector<int> parent(g.nodes.size());
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](int x) {
    while (parent[static_cast<std::size_t>(x)] != x) {
      x = parent[static_cast<std::size_t>(x)] = parent[static_cast<std::size_t>(parent[static_cast<std::size_t>(x)])];
    }
    return x;
  };
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    NodeAnalysis& na = a.nodes[i];
    na.op_class = classify(n);
    na.levels = levels(g, n);
    na.macs = macs(g, n);
    if (na.op_class == OpClass::ClientAided) continue;
    for (TensorId t : n.inputs) {
      if (t == kNoTensor || g.tensors[static_cast<std::size_t>(t)].is_constant) continue;
      const int producer = tensor_segment[static_cast<std::size_t>(t)];
      if (producer >= 0) parent[static_cast<std::size_t>(find(producer))] = find(static_cast<int>(i));
    }
    tensor_segment[static_cast<std::size_t>(n.outputs[0])] = static_cast<int>(i);
  }
  std::vector<int> segment_of_root(g.nodes.size(), -1);
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (a.nodes[i].op_class == OpClass::ClientAided) continue;
    const auto root = static_cast<std::size_t>(find(static_cast<int>(i)));
    if (segment_of_root[root] < 0) {
      segment_of_root[root] = static_cast<int>(a.segments.size());
      a.segments.emplace_back();
    }
    a.segments[static_cast<std::size_t>(segment_of_root[root])].nodes.push_back(static_cast<int>(i));
    a.nodes[i].segment = segment_of_root[root];
  }
  return a;
}

}  // namespace heinfer::model
