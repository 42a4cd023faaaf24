// Shape inference of Add, Sub, Mul, Div and Pow (numpy broadcasting, batch kept at dim 0),
// and the expansion of integer powers into products.
#include <algorithm>
#include <cmath>
#include <optional>

#include "model/infer_common.h"
#include "model/legacy_broadcast.h"

namespace heinfer::model::detail {
namespace {

/// An operand seen per sample: activations as they are; a constant right-aligned against
/// the full output rank, with its dim 0 dropped when it lines up with the batch (must be 1).
struct Operand {
  bool constant = false;
  Shape view;  ///< per-sample shape used for broadcasting (same data layout)
};

std::vector<Operand> per_sample_operands(const Graph& g, const Node& n) {
  const std::string ctx = node_label(n);
  const Tensor& a = input(g, n, 0);
  const Tensor& b = input(g, n, 1);
  auto full_rank = [](const Tensor& t) { return t.shape.size() + (t.is_constant ? 0 : 1); };
  Shape b_shape = b.shape;
  if (g.opset < 7) {
    const std::size_t extra = legacy_broadcast_padding(full_rank(a), full_rank(b), n.attributes, ctx);
    if (b.is_constant) b_shape.resize(b_shape.size() + extra, 1);
    else if (extra > 0) throw_batch_axis(n, "legacy broadcast of a data-dependent B");
  }
  const std::size_t rank = std::max(full_rank(a), b.is_constant ? b_shape.size() : full_rank(b));
  auto make = [&](const Tensor& t, const Shape& shape) {
    Operand op{t.is_constant, shape};
    if (!t.is_constant && full_rank(t) != rank) {
      throw_batch_axis(n, "data operand '" + t.name + "' has fewer dims (" +
                              std::to_string(full_rank(t)) + ") than the result (" +
                              std::to_string(rank) + "); broadcasting would move its batch axis");
    }
    if (t.is_constant && shape.size() == rank) {
      if (shape[0] != 1) {
        throw_batch_axis(n, "constant operand '" + t.name + "' " + to_string(shape) +
                                " varies along dim 0 (constants must be the same for every sample)");
      }
      op.view.erase(op.view.begin());
    }
    return op;
  };
  return {make(a, a.shape), make(b, b_shape)};
}

}  // namespace

void infer_binary(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  if (c.g.opset < 7) check_known_attributes(n.attributes, {"axis", "broadcast"}, ctx);
  else check_known_attributes(n.attributes, {}, ctx);
  if (n.inputs.size() != 2) throw ModelError(ctx + ": needs exactly 2 inputs");
  const std::vector<Operand> ops = per_sample_operands(c.g, n);
  const Shape out = broadcast_shapes(ops[0].view, ops[1].view, ctx);
  const bool both = !ops[0].constant && !ops[1].constant;
  if (n.op == OpType::Mul && both) {
    if (n.inputs[0] != n.inputs[1]) {
      keep_first_output(c, n);
      output(c.g, n).shape = out;
      n.params = ProductParams{broadcast_strides(ops[0].view, out), broadcast_strides(ops[1].view, out)};
      return;
    }
    keep_first_output(c, n);
    n.inputs.resize(1);
    output(c.g, n).shape = out;
    n.params = SquareParams{};
    return;
  }
  if (n.op == OpType::Div) {
    if (!ops[0].constant && ops[1].constant) {
      for (double v : input(c.g, n, 1).data) {
        if (v == 0.0) throw ModelError(ctx + ": division by a constant containing zero");
      }
    } else {
      throw ModelError(ctx + ": division by a data-dependent tensor is not supported; "
                             "supported: Div by a constant");
    }
  }
  keep_first_output(c, n);
  output(c.g, n).shape = out;
  n.params = BinaryParams{broadcast_strides(ops[0].view, out), broadcast_strides(ops[1].view, out)};
}

namespace {

/// The exponent of Pow when it is one constant value that does not broadcast X; nullopt
/// otherwise (infer_pow then reports why).
std::optional<double> uniform_exponent(const Graph& g, const Node& n) {
  if (n.inputs.size() != 2 || !is_activation(g, n.inputs[0]) || !has_input(n, 1)) return std::nullopt;
  const Tensor& e = input(g, n, 1);
  if (!e.is_constant || e.data.empty() || !e.batch_coeff.empty()) return std::nullopt;
  if (std::any_of(e.data.begin(), e.data.end(), [&](double v) { return v != e.data[0]; })) return std::nullopt;
  if (e.shape.size() > input(g, n, 0).shape.size() + 1) return std::nullopt;
  return e.data[0];
}

}  // namespace

namespace {

/// Pow(x, E) with per-element integer exponents in [0, 64] (not all equal): with p_j =
/// x^(2^j) (a chain of squares), y = product over the bits j of M_j, where M_j takes p_j
/// at the elements whose exponent has bit j and the constant 1 elsewhere (an element map
/// with fill 1). Returns the nodes inserted after k, or 0 when E does not qualify.
std::size_t expand_elementwise_power(InferContext& c, std::size_t k) {
  const Node pow = c.g.nodes[k];
  if (pow.inputs.size() != 2 || !is_activation(c.g, pow.inputs[0]) || !has_input(pow, 1)) return 0;
  const Tensor& e = input(c.g, pow, 1);
  if (!e.is_constant || e.data.empty() || !e.batch_coeff.empty()) return 0;
  for (double v : e.data) {
    if (v < 0.0 || v > 64.0 || std::floor(v) != v) return 0;
  }
  const Shape xs = input(c.g, pow, 0).shape;
  const std::vector<Operand> ops = per_sample_operands(c.g, pow);  // refuses exponents varying along dim 0
  if (broadcast_shapes(ops[0].view, ops[1].view, node_label(pow)) != xs) return 0;
  const Shape e_strides = broadcast_strides(ops[1].view, xs);
  const std::int64_t total = numel(xs);
  std::vector<std::int64_t> exponent(static_cast<std::size_t>(total));
  std::int64_t max_e = 0;
  for (std::int64_t o = 0; o < total; ++o) {
    std::int64_t offset = 0, rest = o;
    for (std::size_t d = xs.size(); d-- > 0;) {
      offset += (rest % xs[d]) * e_strides[d];
      rest /= xs[d];
    }
    exponent[static_cast<std::size_t>(o)] = static_cast<std::int64_t>(e.data[static_cast<std::size_t>(offset)]);
    max_e = std::max(max_e, exponent[static_cast<std::size_t>(o)]);
  }
  if (max_e == 0) return 0;
  const TensorId x = pow.inputs[0], y = pow.outputs.at(0);
  std::vector<Node> nodes;
  auto add = [&](OpType op, const std::string& name, std::vector<TensorId> inputs, OpParams params) {
    Node m;
    m.name = pow.name + "/" + name;
    m.op = op;
    m.inputs = std::move(inputs);
    m.outputs = {add_activation(c.g, m.name, xs)};
    m.params = std::move(params);
    nodes.push_back(m);
    return m.outputs[0];
  };
  std::vector<TensorId> factors;
  TensorId p = x;
  for (int j = 0; (max_e >> j) > 0; ++j) {
    if (j > 0) p = add(OpType::Mul, "square_" + std::to_string(j), {p, p}, std::monostate{});
    std::vector<std::int64_t> source(static_cast<std::size_t>(total), -1);
    bool any = false, all = true;
    for (std::int64_t o = 0; o < total; ++o) {
      const bool bit = (exponent[static_cast<std::size_t>(o)] >> j) & 1;
      if (bit) source[static_cast<std::size_t>(o)] = o;
      any = any || bit;
      all = all && bit;
    }
    if (!any) continue;
    factors.push_back(all ? p : add(OpType::Pad, "select_" + std::to_string(j), {p}, ElementMapParams{std::move(source), 1.0}));
  }
  TensorId result = factors[0];
  for (std::size_t f = 1; f < factors.size(); ++f) result = add(OpType::Mul, "times_" + std::to_string(f), {result, factors[f]}, std::monostate{});
  if (nodes.empty() || nodes.back().outputs[0] != result) return 0;  // not reached for unequal exponents
  nodes.back().outputs = {y};
  return replace_node(c, k, std::move(nodes));
}

}  // namespace

std::size_t expand_power(InferContext& c, std::size_t k) {
  Node& n = c.g.nodes[k];
  const std::optional<double> e = uniform_exponent(c.g, n);
  if (!e) return expand_elementwise_power(c, k);
  if (*e == 2.0) return 0;
  if (numel(input(c.g, n, 1).shape) > 1) {
    // A uniform exponent tensor must not broadcast X (infer_pow's rule for the square).
    const std::vector<Operand> ops = per_sample_operands(c.g, n);
    if (broadcast_shapes(ops[0].view, ops[1].view, node_label(n)) != input(c.g, n, 0).shape) return 0;
  }
  if (*e == 1.0 || *e == 0.5) {
    --c.use_count[static_cast<std::size_t>(n.inputs[1])];
    n.op = *e == 1.0 ? OpType::Identity : OpType::Sqrt;
    n.inputs.resize(1);
    n.attributes.clear();
    return 0;
  }
  if (*e < 3.0 || *e > 64.0 || std::floor(*e) != *e) return 0;
  const Node pow = n;
  const TensorId x = pow.inputs[0], y = pow.outputs.at(0);
  std::vector<Node> nodes;
  auto multiply = [&](TensorId a, TensorId b, const std::string& name) {
    Node m;
    m.name = pow.name + "/" + name;
    m.op = OpType::Mul;
    m.inputs = {a, b};
    m.outputs = {add_activation(c.g, m.name)};
    nodes.push_back(m);
    return m.outputs[0];
  };
  // Binary exponentiation: p runs through x^(2^i), result collects the set bits.
  auto bits = static_cast<std::int64_t>(*e);
  TensorId p = x, result = kNoTensor;
  for (int i = 0; bits > 0; ++i) {
    if (bits & 1) result = result == kNoTensor ? p : multiply(result, p, "times_" + std::to_string(i));
    bits >>= 1;
    if (bits > 0) p = multiply(p, p, "square_" + std::to_string(i + 1));
  }
  nodes.back().outputs = {y};  // result is the last node's output
  return replace_node(c, k, std::move(nodes));
}

void infer_pow(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  if (c.g.opset < 7) check_known_attributes(n.attributes, {"axis", "broadcast"}, ctx);
  else check_known_attributes(n.attributes, {}, ctx);
  const Tensor& x = activation_input(c.g, n, 0, "X");
  const Tensor& y = constant_input(c.g, n, 1, "Y (exponent)");
  const std::vector<Operand> ops = per_sample_operands(c.g, n);  // refuses exponents varying along dim 0
  const Shape out = broadcast_shapes(ops[0].view, ops[1].view, ctx);
  for (double v : y.data) {
    if (v != y.data[0]) {
      throw ModelError(ctx + ": per-element exponents are not supported (each element would need its own chain "
                             "of products); supported: one exponent for all elements");
    }
  }
  for (double v : y.data) {
    if (v != 2.0) {
      throw ModelError(ctx + ": unsupported exponent " + std::to_string(v) +
                       (v < 0 ? " (a division)" : std::floor(v) != v ? " (not a polynomial)" : "") +
                       "; supported: integers 1 to 64 (products) and 0.5 (Sqrt)");
    }
  }
  if (out != x.shape) {
    throw ModelError(ctx + ": exponent shape " + to_string(y.shape) + " would broadcast X");
  }
  keep_first_output(c, n);
  n.inputs.resize(1);
  output(c.g, n).shape = out;
  n.params = SquareParams{};
}

}  // namespace heinfer::model::detail
