// Constant evaluation of the element-wise operators.
#include <cmath>

#include "model/activation_fn.h"
#include "model/constant_eval_ops.h"
#include "model/element_map.h"
#include "model/error.h"
#include "model/legacy_broadcast.h"

namespace heinfer::model::detail {
namespace {

const TensorValue& operand(const Node& n, const Args& in, std::size_t i) {
  if (i >= in.size() || !in[i]) throw ModelError(node_label(n) + ": missing input " + std::to_string(i));
  return *in[i];
}

/// out[o] = f(x_0[..], x_1[..], ...) over the numpy broadcast of the operands' shapes.
template <class F>
TensorValue broadcast(const std::vector<const TensorValue*>& xs, std::vector<Shape> shapes,
                      DataType dtype, const std::string& ctx, F f) {
  Shape out = shapes[0];
  for (std::size_t i = 1; i < shapes.size(); ++i) out = broadcast_shapes(out, shapes[i], ctx);
  computed_elements(out, ctx);
  std::vector<Shape> strides;
  for (const Shape& s : shapes) strides.push_back(broadcast_strides(s, out));
  TensorValue r{out, dtype, std::vector<double>(static_cast<std::size_t>(numel(out))), {}};
  std::vector<std::int64_t> idx(out.size(), 0);
  std::vector<double> args(xs.size());
  for (double& v : r.data) {
    for (std::size_t k = 0; k < xs.size(); ++k) {
      std::int64_t off = 0;
      for (std::size_t d = 0; d < out.size(); ++d) off += idx[d] * strides[k][d];
      args[k] = xs[k]->data[static_cast<std::size_t>(off)];
    }
    v = f(args.data());
    for (std::size_t d = out.size(); d-- > 0;) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  return r;
}

TensorValue binary(const Node& n, const Args& in, std::int64_t opset) {
  const std::string ctx = node_label(n);
  const TensorValue& a = operand(n, in, 0);
  const TensorValue& b = operand(n, in, 1);
  Shape b_shape = b.dims;
  if (opset < 7) {
    b_shape.resize(b_shape.size() + legacy_broadcast_padding(a.dims.size(), b.dims.size(), n.attributes, ctx), 1);
  }
  const bool integer = a.dtype == DataType::Int64 && b.dtype == DataType::Int64;
  const bool compare = n.op == OpType::Equal || n.op == OpType::Less || n.op == OpType::Greater;
  const OpType op = n.op;
  return broadcast({&a, &b}, {a.dims, b_shape}, compare ? DataType::Bool : a.dtype, ctx,
                   [&](const double* v) {
                     const double x = v[0], y = v[1];
                     switch (op) {
                       case OpType::Add: return x + y;
                       case OpType::Sub: return x - y;
                       case OpType::Mul: return x * y;
                       case OpType::Div:
                         if (integer && y == 0) throw ModelError(ctx + ": integer division by zero");
                         return integer ? std::trunc(x / y) : x / y;
                       case OpType::Equal: return x == y ? 1.0 : 0.0;
                       case OpType::Less: return x < y ? 1.0 : 0.0;
                       case OpType::Greater: return x > y ? 1.0 : 0.0;
                       default: return std::pow(x, y);
                     }
                   });
}

TensorValue where(const Node& n, const Args& in) {
  const TensorValue &c = operand(n, in, 0), &x = operand(n, in, 1), &y = operand(n, in, 2);
  return broadcast({&c, &x, &y}, {c.dims, x.dims, y.dims}, x.dtype, node_label(n),
                   [](const double* v) { return v[0] != 0 ? v[1] : v[2]; });
}

TensorValue unary(const Node& n, const Args& in, std::int64_t opset) {
  const std::string ctx = node_label(n);
  TensorValue r = operand(n, in, 0);
  r.batch_coeff.clear();
  if (n.op == OpType::Cast) {
    r.dtype = cast_target(n);
    for (double& v : r.data) {
      if (r.dtype == DataType::Int64) v = std::trunc(v);
      else if (r.dtype == DataType::Bool) v = v != 0 ? 1.0 : 0.0;
      else if (r.dtype == DataType::Float32) v = static_cast<float>(v);
    }
    return r;
  }
  if (is_elementwise_function(n.op)) {
    const ActivationParams p = activation_params(n);
    for (double& v : r.data) v = activation_value(n.op, p, v);
    return r;
  }
  double lo = -INFINITY, hi = INFINITY, alpha = 0;
  if (n.op == OpType::LeakyRelu) alpha = get_float(n.attributes, "alpha", 0.01, ctx);
  if (n.op == OpType::Relu) lo = 0;
  if (n.op == OpType::Clip) {
    if (opset < 11) {
      lo = get_float(n.attributes, "min", lo, ctx);
      hi = get_float(n.attributes, "max", hi, ctx);
    } else {
      if (in.size() > 1 && in[1]) lo = in[1]->data.at(0);
      if (in.size() > 2 && in[2]) hi = in[2]->data.at(0);
    }
  }
  if (n.op == OpType::Not) r.dtype = DataType::Bool;
  for (double& v : r.data) {
    switch (n.op) {
      case OpType::Not: v = v == 0 ? 1.0 : 0.0; break;
      case OpType::Neg: v = -v; break;
      case OpType::LeakyRelu: v = v < 0 ? alpha * v : v; break;
      default: v = std::min(std::max(v, lo), hi); break;
    }
  }
  return r;
}

}  // namespace

TensorValue eval_elementwise(const Node& n, const Args& in, std::int64_t opset) {
  switch (n.op) {
    case OpType::Add:
    case OpType::Sub:
    case OpType::Mul:
    case OpType::Div:
    case OpType::Pow:
    case OpType::Equal:
    case OpType::Less:
    case OpType::Greater: return binary(n, in, opset);
    case OpType::Where: return where(n, in);
    case OpType::Not:
    case OpType::Neg:
    case OpType::Cast:
    case OpType::Relu:
    case OpType::LeakyRelu:
    case OpType::Clip: return unary(n, in, opset);
    default:
      if (is_elementwise_function(n.op)) return unary(n, in, opset);
      throw ModelError(node_label(n) + ": all inputs are known at load time but this operator cannot be "
                                       "evaluated on constants");
  }
}

}  // namespace heinfer::model::detail
