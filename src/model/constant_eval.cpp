#include "model/constant_eval.h"

#include <algorithm>
#include <cmath>

#include "model/error.h"
#include "model/legacy_broadcast.h"

namespace heinfer::model {
namespace {

const Tensor& input(const Graph& g, const Node& n, std::size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoTensor) {
    throw ModelError(node_label(n) + ": missing input " + std::to_string(i));
  }
  return g.tensors[static_cast<std::size_t>(n.inputs[i])];
}

TensorValue value_of(const Tensor& t) { return {t.shape, t.dtype, t.data}; }

std::int64_t normalize_axis(std::int64_t axis, std::int64_t rank, const std::string& ctx,
                            bool allow_rank = false) {
  const std::int64_t hi = allow_rank ? rank : rank - 1;
  if (axis < -rank || axis > hi) {
    throw ModelError(ctx + ": axis " + std::to_string(axis) + " out of range for rank " +
                     std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

TensorValue binary(const Graph& g, const Node& n) {
  const std::string ctx = node_label(n);
  const Tensor& a = input(g, n, 0);
  const Tensor& b = input(g, n, 1);
  Shape b_shape = b.shape;
  if (g.opset < 7) {
    b_shape.resize(b_shape.size() + legacy_broadcast_padding(a.shape.size(), b.shape.size(), n.attributes, ctx), 1);
  }
  const Shape out = broadcast_shapes(a.shape, b_shape, ctx);
  const Shape as = broadcast_strides(a.shape, out), bs = broadcast_strides(b_shape, out);
  const bool integer = a.dtype == DataType::Int64 && b.dtype == DataType::Int64;
  TensorValue r{out, a.dtype, std::vector<double>(static_cast<std::size_t>(numel(out)))};
  std::vector<std::int64_t> idx(out.size(), 0);
  for (std::size_t o = 0; o < r.data.size(); ++o) {
    std::int64_t ia = 0, ib = 0;
    for (std::size_t d = 0; d < out.size(); ++d) {
      ia += idx[d] * as[d];
      ib += idx[d] * bs[d];
    }
    const double x = a.data[static_cast<std::size_t>(ia)], y = b.data[static_cast<std::size_t>(ib)];
    double v = 0;
    switch (n.op) {
      case OpType::Add: v = x + y; break;
      case OpType::Sub: v = x - y; break;
      case OpType::Mul: v = x * y; break;
      case OpType::Div:
        if (integer && y == 0) throw ModelError(ctx + ": integer division by zero");
        v = integer ? std::trunc(x / y) : x / y;
        break;
      default: v = std::pow(x, y); break;
    }
    r.data[o] = v;
    for (std::size_t d = out.size(); d-- > 0;) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  return r;
}

TensorValue reshape(const Graph& g, const Node& n) {
  const std::string ctx = node_label(n);
  const Tensor& data = input(g, n, 0);
  Shape target;
  for (double v : input(g, n, 1).data) target.push_back(static_cast<std::int64_t>(v));
  const bool allowzero = get_int(n.attributes, "allowzero", 0, ctx) != 0;
  const std::int64_t total = numel(data.shape);
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (target[i] == 0 && !allowzero) {
      if (i >= data.shape.size()) throw ModelError(ctx + ": shape 0 refers to a missing dim");
      target[i] = data.shape[i];
    }
    if (target[i] == -1) {
      if (infer >= 0) throw ModelError(ctx + ": more than one -1 in the target shape");
      infer = static_cast<int>(i);
    } else if (target[i] < 0) {
      throw ModelError(ctx + ": invalid target dim " + std::to_string(target[i]));
    } else {
      known *= target[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || total % known != 0) throw ModelError(ctx + ": cannot infer the -1 dim");
    target[static_cast<std::size_t>(infer)] = total / known;
  }
  if (numel(target) != total) {
    throw ModelError(ctx + ": cannot reshape " + to_string(data.shape) + " into " +
                     to_string(target));
  }
  return {target, data.dtype, data.data};
}

TensorValue flatten(const Graph& g, const Node& n) {
  const Tensor& data = input(g, n, 0);
  const auto rank = static_cast<std::int64_t>(data.shape.size());
  const std::int64_t axis =
      normalize_axis(get_int(n.attributes, "axis", 1, node_label(n)), rank, node_label(n), true);
  std::int64_t outer = 1;
  for (std::int64_t i = 0; i < axis; ++i) outer *= data.shape[static_cast<std::size_t>(i)];
  return {{outer, numel(data.shape) / std::max<std::int64_t>(outer, 1)}, data.dtype, data.data};
}

TensorValue transpose(const Graph& g, const Node& n) {
  const std::string ctx = node_label(n);
  const Tensor& data = input(g, n, 0);
  const std::size_t rank = data.shape.size();
  std::vector<std::int64_t> perm(rank);
  for (std::size_t i = 0; i < rank; ++i) perm[i] = static_cast<std::int64_t>(rank - 1 - i);
  if (auto p = get_ints(n.attributes, "perm", ctx)) perm = *p;
  std::vector<std::int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < rank; ++i) {
    if (sorted.size() != rank || sorted[i] != static_cast<std::int64_t>(i)) {
      throw ModelError(ctx + ": perm is not a permutation of the axes");
    }
  }
  Shape out(rank);
  const Shape in_strides = row_major_strides(data.shape);
  Shape src_strides(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    out[i] = data.shape[static_cast<std::size_t>(perm[i])];
    src_strides[i] = in_strides[static_cast<std::size_t>(perm[i])];
  }
  TensorValue r{out, data.dtype, std::vector<double>(data.data.size())};
  std::vector<std::int64_t> idx(rank, 0);
  for (std::size_t o = 0; o < r.data.size(); ++o) {
    std::int64_t src = 0;
    for (std::size_t d = 0; d < rank; ++d) src += idx[d] * src_strides[d];
    r.data[o] = data.data[static_cast<std::size_t>(src)];
    for (std::size_t d = rank; d-- > 0;) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  return r;
}

TensorValue concat(const Graph& g, const Node& n) {
  const std::string ctx = node_label(n);
  const Tensor& first = input(g, n, 0);
  const auto rank = static_cast<std::int64_t>(first.shape.size());
  const std::int64_t axis = normalize_axis(get_int(n.attributes, "axis", 0, ctx), rank, ctx);
  Shape out = first.shape;
  out[static_cast<std::size_t>(axis)] = 0;
  for (std::size_t i = 0; i < n.inputs.size(); ++i) {
    const Tensor& t = input(g, n, i);
    for (std::int64_t d = 0; d < rank; ++d) {
      const auto du = static_cast<std::size_t>(d);
      if (t.shape.size() != first.shape.size() || (d != axis && t.shape[du] != first.shape[du])) {
        throw ModelError(ctx + ": input shapes " + to_string(first.shape) + " and " +
                         to_string(t.shape) + " differ outside the concat axis");
      }
    }
    out[static_cast<std::size_t>(axis)] += t.shape[static_cast<std::size_t>(axis)];
  }
  std::int64_t outer = 1;
  for (std::int64_t d = 0; d < axis; ++d) outer *= out[static_cast<std::size_t>(d)];
  TensorValue r{out, first.dtype, {}};
  r.data.reserve(static_cast<std::size_t>(numel(out)));
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const Tensor& t = input(g, n, i);
      const std::int64_t chunk = numel(t.shape) / std::max<std::int64_t>(outer, 1);
      const auto begin = t.data.begin() + o * chunk;
      r.data.insert(r.data.end(), begin, begin + chunk);
    }
  }
  return r;
}

TensorValue unary(const Graph& g, const Node& n) {
  const std::string ctx = node_label(n);
  TensorValue r = value_of(input(g, n, 0));
  double lo = -INFINITY, hi = INFINITY, alpha = 0;
  if (n.op == OpType::Relu) lo = 0;
  if (n.op == OpType::LeakyRelu) alpha = get_float(n.attributes, "alpha", 0.01, ctx);
  if (n.op == OpType::Clip) {
    if (g.opset < 11) {
      lo = get_float(n.attributes, "min", lo, ctx);
      hi = get_float(n.attributes, "max", hi, ctx);
    } else {
      if (n.inputs.size() > 1 && n.inputs[1] != kNoTensor) lo = input(g, n, 1).data.at(0);
      if (n.inputs.size() > 2 && n.inputs[2] != kNoTensor) hi = input(g, n, 2).data.at(0);
    }
  }
  for (double& v : r.data) {
    v = n.op == OpType::LeakyRelu ? (v < 0 ? alpha * v : v) : std::min(std::max(v, lo), hi);
  }
  return r;
}

}  // namespace

TensorValue evaluate_constant_node(const Graph& g, const Node& n) {
  switch (n.op) {
    case OpType::Identity:
    case OpType::Dropout: return value_of(input(g, n, 0));
    case OpType::Reshape: return reshape(g, n);
    case OpType::Flatten: return flatten(g, n);
    case OpType::Transpose: return transpose(g, n);
    case OpType::Concat: return concat(g, n);
    case OpType::Add:
    case OpType::Sub:
    case OpType::Mul:
    case OpType::Div:
    case OpType::Pow: return binary(g, n);
    case OpType::Relu:
    case OpType::LeakyRelu:
    case OpType::Clip: return unary(g, n);
    default:
      throw ModelError(node_label(n) +
                       ": all inputs are constants but constant folding of this operator is "
                       "not supported (foldable: Identity, Dropout, Reshape, Flatten, Transpose, "
                       "Concat, Add, Sub, Mul, Div, Pow, Relu, LeakyRelu, Clip)");
  }
}

}  // namespace heinfer::model
