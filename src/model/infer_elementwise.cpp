// Shape inference of Add, Sub, Mul, Div and Pow (numpy broadcasting, batch kept at dim 0).
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

void infer_pow(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  if (c.g.opset < 7) check_known_attributes(n.attributes, {"axis", "broadcast"}, ctx);
  else check_known_attributes(n.attributes, {}, ctx);
  const Tensor& x = activation_input(c.g, n, 0, "X");
  const Tensor& y = constant_input(c.g, n, 1, "Y (exponent)");
  for (double v : y.data) {
    if (v != 2.0) {
      throw ModelError(ctx + ": unsupported exponent " + std::to_string(v) +
                       "; supported: the constant 2 (square)");
    }
  }
  const std::vector<Operand> ops = per_sample_operands(c.g, n);
  const Shape out = broadcast_shapes(ops[0].view, ops[1].view, ctx);
  if (out != x.shape) {
    throw ModelError(ctx + ": exponent shape " + to_string(y.shape) + " would broadcast X");
  }
  keep_first_output(c, n);
  n.inputs.resize(1);
  output(c.g, n).shape = out;
  n.params = SquareParams{};
}

}  // namespace heinfer::model::detail
