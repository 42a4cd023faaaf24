// Shape inference of the element-wise client-aided activations, Softmax/LogSoftmax and
// the Identity-like ops.
#include "model/activation_fn.h"
#include "model/infer_common.h"

namespace heinfer::model::detail {
namespace {

double scalar_constant(const Graph& g, const Node& n, std::size_t i, const char* what) {
  const Tensor& t = constant_input(g, n, i, what);
  if (t.data.size() != 1) {
    throw ModelError(node_label(n) + ": " + what + " must be a scalar, got shape " +
                     to_string(t.shape));
  }
  return t.data[0];
}

}  // namespace

void infer_activation(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  const Tensor& x = activation_input(c.g, n, 0, "X");
  if (is_elementwise_function(n.op)) {
    n.params = activation_params(n);
  } else if (n.op == OpType::Relu) {
    check_known_attributes(n.attributes, {}, ctx);
    n.params = NoParams{};
  } else if (n.op == OpType::LeakyRelu) {
    check_known_attributes(n.attributes, {"alpha"}, ctx);
    n.params = LeakyReluParams{get_float(n.attributes, "alpha", 0.01, ctx)};
  } else {
    ClipParams p;
    if (c.g.opset < 11) {
      check_known_attributes(n.attributes, {"max", "min"}, ctx);
      p.min = get_float(n.attributes, "min", p.min, ctx);
      p.max = get_float(n.attributes, "max", p.max, ctx);
    } else {
      check_known_attributes(n.attributes, {}, ctx);
      if (has_input(n, 1)) p.min = scalar_constant(c.g, n, 1, "min");
      if (has_input(n, 2)) p.max = scalar_constant(c.g, n, 2, "max");
    }
    n.inputs.resize(1);
    n.params = p;
  }
  const Shape shape = x.shape;
  keep_first_output(c, n);
  output(c.g, n).shape = shape;
}

void infer_softmax(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {"axis"}, ctx);
  const Shape xs = activation_input(c.g, n, 0, "input").shape;
  const auto rank = static_cast<std::int64_t>(xs.size()) + 1;
  const bool legacy = c.g.opset < 13;
  const std::int64_t axis =
      normalize_axis(get_int(n.attributes, "axis", legacy ? 1 : -1, ctx), rank, ctx);
  if (axis == 0) throw_batch_axis(n, "softmax over axis 0 mixes the samples of a batch");
  const auto a = static_cast<std::size_t>(axis - 1);  // per-sample axis
  SoftmaxParams p;
  p.outer = numel(Shape(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(a)));
  if (legacy) {  // opset < 13: coerced to 2-D [prod(dims[:axis]), prod(dims[axis:])]
    p.n = numel(Shape(xs.begin() + static_cast<std::ptrdiff_t>(a), xs.end()));
    p.inner = 1;
  } else {
    p.n = xs[a];
    p.inner = numel(Shape(xs.begin() + static_cast<std::ptrdiff_t>(a) + 1, xs.end()));
  }
  keep_first_output(c, n);
  output(c.g, n).shape = xs;
  n.params = p;
}

void infer_identity(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  if (n.op == OpType::Dropout) {
    check_known_attributes(n.attributes, {"is_test", "ratio", "seed"}, ctx);
    if (c.g.opset < 7 && get_int(n.attributes, "is_test", 0, ctx) == 0) {
      throw ModelError(ctx + ": unsupported attribute value is_test=0 (training); supported: 1");
    }
    if (has_input(n, 2) && scalar_constant(c.g, n, 2, "training_mode") != 0.0) {
      throw ModelError(ctx + ": training_mode=true is not supported; supported: false (inference)");
    }
    if (has_input(n, 1)) scalar_constant(c.g, n, 1, "ratio");
    n.inputs.resize(1);
  } else {
    check_known_attributes(n.attributes, {}, ctx);
  }
  const Shape shape = activation_input(c.g, n, 0, "input").shape;
  keep_first_output(c, n);
  output(c.g, n).shape = shape;
  n.params = NoParams{};
}

}  // namespace heinfer::model::detail
