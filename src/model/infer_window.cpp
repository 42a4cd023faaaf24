// Shape inference of Conv, MaxPool, AveragePool and GlobalAveragePool.
#include "model/infer_common.h"
#include "model/window_geometry.h"

namespace heinfer::model::detail {
namespace {

Shape ints_or(const Node& n, const char* name, std::size_t count, std::int64_t fallback) {
  return get_ints(n.attributes, name, node_label(n)).value_or(Shape(count, fallback));
}

}  // namespace

void infer_conv(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes,
                         {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"}, ctx);
  if (n.inputs.size() > 3) {
    throw ModelError(ctx + ": Conv takes 2 or 3 inputs (X, W, B), got " + std::to_string(n.inputs.size()));
  }
  const Tensor& x = activation_input(c.g, n, 0, "X");
  const Tensor& w = constant_input(c.g, n, 1, "W");
  if (x.shape.size() < 2) {
    throw ModelError(ctx + ": input X must be [N, C, spatial...], got per-sample shape " +
                     to_string(x.shape));
  }
  const std::size_t s = x.shape.size() - 1;
  if (w.shape.size() != s + 2) {
    throw ModelError(ctx + ": W must have rank " + std::to_string(s + 2) + ", got " +
                     to_string(w.shape));
  }
  ConvParams p;
  p.group = get_int(n.attributes, "group", 1, ctx);
  const std::int64_t channels = x.shape[0], m = w.shape[0];
  if (p.group <= 0 || channels % p.group != 0 || m % p.group != 0 ||
      w.shape[1] * p.group != channels) {
    throw ModelError(ctx + ": group=" + std::to_string(p.group) + " is inconsistent with " +
                     std::to_string(channels) + " input channels and W " + to_string(w.shape));
  }
  p.kernel.assign(w.shape.begin() + 2, w.shape.end());
  if (auto ks = get_ints(n.attributes, "kernel_shape", ctx); ks && *ks != p.kernel) {
    throw ModelError(ctx + ": kernel_shape " + to_string(*ks) + " does not match W " +
                     to_string(w.shape));
  }
  p.strides = ints_or(n, "strides", s, 1);
  p.dilations = ints_or(n, "dilations", s, 1);
  const Shape in(x.shape.begin() + 1, x.shape.end());
  const WindowGeometry geo = resolve_window(
      in, p.kernel, p.strides, p.dilations, get_string(n.attributes, "auto_pad", "NOTSET", ctx),
      get_ints(n.attributes, "pads", ctx), false, ctx);
  p.pads_begin = geo.pads_begin;
  p.pads_end = geo.pads_end;
  if (has_input(n, 2)) {
    const Tensor& b = constant_input(c.g, n, 2, "B");
    if (b.shape != Shape{m}) {
      throw ModelError(ctx + ": B must have shape [" + std::to_string(m) + "], got " +
                       to_string(b.shape));
    }
  }
  n.inputs.resize(3, kNoTensor);
  keep_first_output(c, n);
  Shape out{m};
  out.insert(out.end(), geo.out.begin(), geo.out.end());
  output(c.g, n).shape = out;
  n.params = std::move(p);
}

void infer_pool(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  const Tensor& x = activation_input(c.g, n, 0, "X");
  if (x.shape.empty()) throw ModelError(ctx + ": input X must be [N, C, spatial...]");
  const std::size_t s = x.shape.size() - 1;
  const Shape in(x.shape.begin() + 1, x.shape.end());
  PoolParams p;
  WindowGeometry geo;
  if (n.op == OpType::GlobalAveragePool) {
    check_known_attributes(n.attributes, {}, ctx);
    if (s > kMaxSpatialDims) throw ModelError(ctx + ": too many spatial dims");
    p.kernel = in;
    p.strides = p.dilations = Shape(s, 1);
    p.pads_begin = p.pads_end = Shape(s, 0);
    geo.out = Shape(s, 1);
  } else {
    if (n.op == OpType::MaxPool) {
      check_known_attributes(n.attributes,
                             {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                              "storage_order", "strides"},
                             ctx);
    } else {
      check_known_attributes(
          n.attributes,
          {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"}, ctx);
      p.count_include_pad = get_int(n.attributes, "count_include_pad", 0, ctx) != 0;
    }
    auto kernel = get_ints(n.attributes, "kernel_shape", ctx);
    if (!kernel) throw ModelError(ctx + ": missing required attribute 'kernel_shape'");
    p.kernel = *kernel;
    p.strides = ints_or(n, "strides", s, 1);
    p.dilations = ints_or(n, "dilations", s, 1);
    geo = resolve_window(in, p.kernel, p.strides, p.dilations,
                         get_string(n.attributes, "auto_pad", "NOTSET", ctx),
                         get_ints(n.attributes, "pads", ctx),
                         get_int(n.attributes, "ceil_mode", 0, ctx) != 0, ctx);
    p.pads_begin = geo.pads_begin;
    p.pads_end = geo.pads_end;
  }
  keep_first_output(c, n);
  Shape out{x.shape[0]};
  out.insert(out.end(), geo.out.begin(), geo.out.end());
  output(c.g, n).shape = out;
  n.params = std::move(p);
}

}  // namespace heinfer::model::detail
