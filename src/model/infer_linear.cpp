// Shape inference of Gemm, MatMul and BatchNormalization: constant operands are rewritten
// into the kernel layout (GemmParams: W [n, k], bias [n]; BatchNormParams: scale, shift).
#include <cmath>

#include "model/infer_common.h"

namespace heinfer::model::detail {
namespace {

/// Drops leading size-1 dims of a constant operand's shape (down to `min_rank`).
Shape squeeze_leading(Shape s, std::size_t min_rank) {
  while (s.size() > min_rank && s.front() == 1) s.erase(s.begin());
  return s;
}

}  // namespace

std::size_t expand_gemm_activation_bias(InferContext& c, std::size_t k) {
  const Node gemm = c.g.nodes[k];
  if (!has_input(gemm, 2) || !is_activation(c.g, gemm.inputs[2])) return 0;
  const std::string ctx = node_label(gemm);
  const double beta = get_float(gemm.attributes, "beta", 1.0, ctx);
  const TensorId y = gemm.outputs.at(0), bias = gemm.inputs[2];
  Node product = gemm;
  product.inputs.resize(2);
  product.attributes.erase("beta");
  product.outputs = {add_activation(c.g, gemm.name + "/product")};
  std::vector<Node> nodes{product};
  TensorId term = bias;
  if (beta != 1.0) {
    Node scale;
    scale.name = gemm.name + "/beta";
    scale.op = OpType::Mul;
    scale.inputs = {bias, add_constant(c.g, scale.name + "/value", {}, {beta})};
    scale.outputs = {add_activation(c.g, scale.name)};
    term = scale.outputs[0];
    nodes.push_back(scale);
  }
  Node sum;
  sum.name = gemm.name + "/add_c";
  sum.op = OpType::Add;
  sum.inputs = {product.outputs[0], term};
  sum.outputs = {y};
  nodes.push_back(sum);
  return replace_node(c, k, std::move(nodes));
}

void infer_gemm(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  if (c.g.opset < 7) {
    check_known_attributes(n.attributes, {"alpha", "beta", "broadcast", "transA", "transB"}, ctx);
  } else {
    check_known_attributes(n.attributes, {"alpha", "beta", "transA", "transB"}, ctx);
  }
  if (input(c.g, n, 0).is_constant) {
    throw ModelError(ctx + ": a constant A with a data-dependent B is not supported (the batch "
                           "must be A's first dim)");
  }
  const Tensor& a = activation_input(c.g, n, 0, "A");
  const Tensor& b = constant_input(c.g, n, 1, "B");
  if (get_int(n.attributes, "transA", 0, ctx) != 0) {
    throw_batch_axis(n, "transA=1 on the data-dependent A would transpose the batch axis");
  }
  if (a.shape.size() != 1) {
    throw ModelError(ctx + ": A must be 2-D [N, K], got per-sample shape " + to_string(a.shape));
  }
  if (b.shape.size() != 2) throw ModelError(ctx + ": B must be 2-D, got " + to_string(b.shape));
  const bool trans_b = get_int(n.attributes, "transB", 0, ctx) != 0;
  const double alpha = get_float(n.attributes, "alpha", 1.0, ctx);
  const double beta = get_float(n.attributes, "beta", 1.0, ctx);
  const std::int64_t k = a.shape[0];
  const std::int64_t nn = trans_b ? b.shape[0] : b.shape[1];
  if ((trans_b ? b.shape[1] : b.shape[0]) != k) {
    throw ModelError(ctx + ": A has K=" + std::to_string(k) + " but B is " + to_string(b.shape) +
                     (trans_b ? " (transB=1)" : ""));
  }
  std::vector<double> w(static_cast<std::size_t>(nn * k));
  for (std::int64_t j = 0; j < nn; ++j) {
    for (std::int64_t i = 0; i < k; ++i) {
      const std::int64_t src = trans_b ? j * k + i : i * nn + j;
      w[static_cast<std::size_t>(j * k + i)] = alpha * b.data[static_cast<std::size_t>(src)];
    }
  }
  TensorId bias_id = kNoTensor;
  if (has_input(n, 2) && beta != 0.0) {
    const Tensor& cc = constant_input(c.g, n, 2, "C");
    const Shape cs = squeeze_leading(cc.shape, 0);
    if (cs.size() > 1 || (cs.size() == 1 && cs[0] != 1 && cs[0] != nn)) {
      throw ModelError(ctx + ": C " + to_string(cc.shape) + " must broadcast along the batch: "
                       "supported shapes [], [1], [" + std::to_string(nn) + "], [1, " +
                       std::to_string(nn) + "]");
    }
    std::vector<double> bias(static_cast<std::size_t>(nn));
    for (std::int64_t j = 0; j < nn; ++j) {
      bias[static_cast<std::size_t>(j)] = beta * cc.data[cc.data.size() == 1 ? 0 : static_cast<std::size_t>(j)];
    }
    bias_id = add_constant(c.g, n.name + ".bias", {nn}, std::move(bias));
  }
  const TensorId x = n.inputs[0];
  const TensorId w_id = add_constant(c.g, n.name + ".weight", {nn, k}, std::move(w));
  n.inputs = {x, w_id, bias_id};
  keep_first_output(c, n);
  output(c.g, n).shape = {nn};
  n.params = GemmParams{1, k, nn, 1};
}

void infer_matmul(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {}, ctx);
  const bool weight_left = input(c.g, n, 0).is_constant;
  const Tensor& x = activation_input(c.g, n, weight_left ? 1 : 0, weight_left ? "B" : "A");
  const Tensor& w = constant_input(c.g, n, weight_left ? 0 : 1, weight_left ? "A" : "B");
  const Shape ws = squeeze_leading(w.shape, 1);
  if (ws.size() > 2) {
    throw ModelError(ctx + ": constant operand " + to_string(w.shape) +
                     " must be 1-D or 2-D (batched constant matmul is not supported)");
  }
  Shape xs = x.shape;
  GemmParams p;
  std::vector<double> wt;
  Shape out;
  if (!weight_left) {
    // x [..., K] @ W [K, N] (or [K]) -> [..., N] (or [...]).
    if (xs.empty()) throw_batch_axis(n, "a 1-D data operand would contract over the batch axis");
    p.k = xs.back();
    p.n = ws.size() == 2 ? ws[1] : 1;
    if (ws[0] != p.k) {
      throw ModelError(ctx + ": inner dims differ: A " + to_string(xs) + " (per sample), B " +
                       to_string(w.shape));
    }
    p.outer = numel(Shape(xs.begin(), xs.end() - 1));
    wt.resize(static_cast<std::size_t>(p.n * p.k));
    for (std::int64_t j = 0; j < p.n; ++j) {
      for (std::int64_t i = 0; i < p.k; ++i) {
        wt[static_cast<std::size_t>(j * p.k + i)] = w.data[static_cast<std::size_t>(i * p.n + j)];
      }
    }
    out.assign(xs.begin(), xs.end() - 1);
    if (ws.size() == 2) out.push_back(p.n);
  } else {
    // W [M, K] (or [K]) @ x [..., K, C] -> [..., M, C] (or [..., C]).
    if (xs.size() < 2) {
      throw_batch_axis(n, "a constant left operand needs a data operand of rank >= 3 ([N, ..., K, C])");
    }
    p.k = xs[xs.size() - 2];
    p.inner = xs.back();
    p.n = ws.size() == 2 ? ws[0] : 1;
    if (ws.back() != p.k) {
      throw ModelError(ctx + ": inner dims differ: A " + to_string(w.shape) + ", B " +
                       to_string(xs) + " (per sample)");
    }
    p.outer = numel(Shape(xs.begin(), xs.end() - 2));
    wt = w.data;
    out.assign(xs.begin(), xs.end() - 2);
    if (ws.size() == 2) out.push_back(p.n);
    out.push_back(p.inner);
  }
  const TensorId x_id = n.inputs[weight_left ? 1 : 0];
  const TensorId w_id = add_constant(c.g, n.name + ".weight", {p.n, p.k}, std::move(wt));
  n.inputs = {x_id, w_id, kNoTensor};
  keep_first_output(c, n);
  output(c.g, n).shape = out;
  n.params = p;
}

void infer_batchnorm(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes,
                         {"epsilon", "momentum", "spatial", "is_test", "training_mode"}, ctx);
  if (get_int(n.attributes, "training_mode", 0, ctx) != 0) {
    throw ModelError(ctx + ": unsupported attribute value training_mode=1; supported: 0 (inference)");
  }
  if (get_int(n.attributes, "spatial", 1, ctx) != 1) {
    throw ModelError(ctx + ": unsupported attribute value spatial=0; supported: 1");
  }
  if (c.g.opset < 7 && get_int(n.attributes, "is_test", 0, ctx) == 0) {
    throw ModelError(ctx + ": unsupported attribute value is_test=0 (training); supported: 1");
  }
  const double eps = get_float(n.attributes, "epsilon", 1e-5, ctx);
  const Tensor& x = activation_input(c.g, n, 0, "X");
  if (x.shape.empty()) throw ModelError(ctx + ": input X must be [N, C, ...]");
  const std::int64_t ch = x.shape[0];
  const char* names[] = {"", "scale", "B", "mean", "var"};
  std::vector<const Tensor*> p(5, nullptr);
  for (std::size_t i = 1; i < 5; ++i) {
    p[i] = &constant_input(c.g, n, i, names[i]);
    if (p[i]->shape != Shape{ch}) {
      throw ModelError(ctx + ": " + names[i] + " must have shape [" + std::to_string(ch) +
                       "], got " + to_string(p[i]->shape));
    }
  }
  std::vector<double> scale(static_cast<std::size_t>(ch)), shift(scale.size());
  for (std::size_t j = 0; j < scale.size(); ++j) {
    scale[j] = p[1]->data[j] / std::sqrt(p[4]->data[j] + eps);
    shift[j] = p[2]->data[j] - p[3]->data[j] * scale[j];
  }
  const Shape x_shape = x.shape;
  const TensorId x_id = n.inputs[0];
  const TensorId s_id = add_constant(c.g, n.name + ".scale", {ch}, std::move(scale));
  const TensorId b_id = add_constant(c.g, n.name + ".shift", {ch}, std::move(shift));
  n.inputs = {x_id, s_id, b_id};
  keep_first_output(c, n);
  output(c.g, n).shape = x_shape;
  n.params = BatchNormParams{ch, numel(Shape(x_shape.begin() + 1, x_shape.end()))};
}

}  // namespace heinfer::model::detail
