#include "model/constant_eval.h"

#include <algorithm>
#include <cmath>

#include "model/constant_eval_ops.h"
#include "model/error.h"

namespace heinfer::model {
namespace {

using detail::Args;

TensorValue evaluate(const Node& n, const Args& in, std::int64_t opset) {
  return detail::is_layout_op(n.op) ? detail::eval_layout(n, in, opset)
                                    : detail::eval_elementwise(n, in, opset);
}

bool symbolic(const TensorValue* v) {
  return v && std::any_of(v->batch_coeff.begin(), v->batch_coeff.end(), [](double c) { return c != 0; });
}

/// The inputs through which the op is linear (their values may depend on N); nullopt when
/// it is linear in none.
std::optional<std::vector<std::size_t>> linear_inputs(const Node& n) {
  switch (n.op) {
    case OpType::Identity: case OpType::Dropout: case OpType::Reshape: case OpType::Flatten:
    case OpType::Transpose: case OpType::Gather: case OpType::Slice: case OpType::Squeeze:
    case OpType::Unsqueeze: case OpType::Expand: case OpType::Neg: return std::vector<std::size_t>{0};
    case OpType::Add: case OpType::Sub: return std::vector<std::size_t>{0, 1};
    case OpType::Where: return std::vector<std::size_t>{1, 2};
    case OpType::Concat: {
      std::vector<std::size_t> all(n.inputs.size());
      for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
      return all;
    }
    default: return std::nullopt;
  }
}

/// The coefficient of N in the output: the op applied to the inputs' coefficients (zeros for
/// known inputs) through its linear inputs; Mul by a known value scales them.
std::vector<double> batch_coefficients(const Node& n, const Args& in, const TensorValue& value,
                                       std::int64_t opset) {
  const std::string ctx = node_label(n);
  auto depends = [&](const std::string& why) {
    return ModelError(ctx + ": the result would depend on the batch size (" + why +
                      "); under batch-axis packing the batch must stay a free dim");
  };
  std::vector<TensorValue> coeffs(in.size());
  Args sub = in;
  auto coefficients_of = [&](std::size_t i) {
    coeffs[i] = *in[i];
    coeffs[i].data = in[i]->batch_coeff.empty() ? std::vector<double>(in[i]->data.size(), 0.0)
                                                : in[i]->batch_coeff;
    coeffs[i].batch_coeff.clear();
    sub[i] = &coeffs[i];
  };
  if (n.op == OpType::Cast) {
    if (value.dtype != DataType::Int64) throw depends("Cast of a batch-dependent value to a non-integer type");
    coefficients_of(0);
  } else if (n.op == OpType::Mul || n.op == OpType::Div) {
    if (symbolic(in[0]) == symbolic(in[1])) throw depends("a product of two batch-dependent values");
    if (n.op == OpType::Div && symbolic(in[1])) throw depends("a division by the batch size");
    coefficients_of(symbolic(in[0]) ? 0 : 1);
  } else if (auto linear = linear_inputs(n)) {
    for (std::size_t i = 0; i < in.size(); ++i) {
      const bool is_linear = std::find(linear->begin(), linear->end(), i) != linear->end();
      if (!is_linear && symbolic(in[i])) throw depends("input " + std::to_string(i) + " is batch-dependent");
      if (is_linear && in[i]) coefficients_of(i);
    }
  } else {
    throw depends(std::string(op_name(n.op)) + " of a batch-dependent value");
  }
  TensorValue c = evaluate(n, sub, opset);
  if (n.op == OpType::Div) {
    // (c N + d) / k == (c / k) N + d / k only when k divides both.
    if (in[1]->data.size() != 1) throw depends("a division of a batch-dependent value by a tensor");
    const double k = in[1]->data[0];
    for (std::size_t i = 0; i < in[0]->data.size(); ++i) {
      if (std::fmod(in[0]->batch_coeff[i], k) != 0 || std::fmod(in[0]->data[i], k) != 0) {
        throw depends("an inexact division of a batch-dependent value");
      }
    }
  }
  return c.data;
}

}  // namespace

TensorValue evaluate_constant_node(const Graph& g, const Node& n) {
  std::vector<TensorValue> values;
  values.reserve(n.inputs.size());
  Args in;
  bool any_symbolic = false;
  for (TensorId t : n.inputs) {
    if (t == kNoTensor) {
      in.push_back(nullptr);
      continue;
    }
    const Tensor& x = g.tensors[static_cast<std::size_t>(t)];
    if (!x.is_constant) throw ModelError(node_label(n) + ": input '" + x.name + "' is not known at load time");
    values.push_back(detail::value_of(x));
    in.push_back(&values.back());
    any_symbolic = any_symbolic || symbolic(in.back());
  }
  TensorValue r = evaluate(n, in, g.opset);
  if (any_symbolic) {
    r.batch_coeff = batch_coefficients(n, in, r, g.opset);
    if (std::none_of(r.batch_coeff.begin(), r.batch_coeff.end(), [](double c) { return c != 0; })) {
      r.batch_coeff.clear();
    }
  }
  return r;
}

TensorValue evaluate_shape_of_activation(const Graph& g, const Node& n) {
  const Tensor& x = g.tensors[static_cast<std::size_t>(n.inputs.at(0))];
  if (n.op == OpType::Size) {
    check_known_attributes(n.attributes, {}, node_label(n));
    return {{}, DataType::Int64, {0.0}, {static_cast<double>(numel(x.shape))}};
  }
  if (n.op != OpType::Shape) throw ModelError(node_label(n) + ": not Shape or Size");
  // The shape with N as dim 0: a placeholder 1 evaluated by the one Shape rule, then the
  // entry that came from dim 0 becomes N.
  TensorValue full{{}, DataType::Float32, {}, {}};
  full.dims.push_back(1);
  full.dims.insert(full.dims.end(), x.shape.begin(), x.shape.end());
  const Args in{&full};
  TensorValue r = detail::eval_layout(n, in, g.opset);
  const auto rank = static_cast<std::int64_t>(full.dims.size());
  std::int64_t start = get_int(n.attributes, "start", 0, node_label(n));
  if (start < 0) start += rank;
  if (start <= 0 && !r.data.empty()) {
    r.batch_coeff.assign(r.data.size(), 0.0);
    r.batch_coeff[0] = 1.0;
    r.data[0] = 0.0;
  }
  return r;
}

}  // namespace heinfer::model
