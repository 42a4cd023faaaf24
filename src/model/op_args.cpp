#include "model/op_args.h"

#include <algorithm>

#include "model/error.h"
#include "model/infer_common.h"

namespace heinfer::model::detail {
namespace {

std::vector<std::int64_t> normalized_sorted(std::vector<std::int64_t> axes, std::int64_t rank,
                                            const Node& n) {
  for (std::int64_t& a : axes) a = normalize_axis(a, rank, node_label(n));
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) {
    throw ModelError(node_label(n) + ": axes " + to_string(axes) + " repeat an axis");
  }
  return axes;
}

}  // namespace

TensorValue value_of(const Tensor& t) { return {t.shape, t.dtype, t.data, t.batch_coeff}; }

std::optional<std::vector<std::int64_t>> int_list(const Node& n, const Args& args, std::size_t i,
                                                  const char* what) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoTensor) return std::nullopt;
  const TensorValue* v = i < args.size() ? args[i] : nullptr;
  if (!v) {
    throw ModelError(node_label(n) + ": " + what + " (input " + std::to_string(i) +
                     ") must be known when the model is loaded (a constant or computed from shapes)");
  }
  if (v->dtype != DataType::Int64 || v->dims.size() > 1) {
    throw ModelError(node_label(n) + ": " + what + " must be a 1-D integer tensor, got shape " +
                     to_string(v->dims));
  }
  for (double c : v->batch_coeff) {
    if (c != 0) throw ModelError(node_label(n) + ": " + what + " depends on the batch size");
  }
  return to_int64s(v->data, node_label(n) + ": " + what);
}

SliceArgs slice_args(const Node& n, const Args& args, std::int64_t rank, std::int64_t opset) {
  const std::string ctx = node_label(n);
  SliceArgs s;
  std::optional<std::vector<std::int64_t>> axes, steps;
  if (opset < 10) {
    check_known_attributes(n.attributes, {"axes", "ends", "starts"}, ctx);
    s.starts = get_ints(n.attributes, "starts", ctx).value_or(std::vector<std::int64_t>{});
    s.ends = get_ints(n.attributes, "ends", ctx).value_or(std::vector<std::int64_t>{});
    axes = get_ints(n.attributes, "axes", ctx);
  } else {
    check_known_attributes(n.attributes, {}, ctx);
    s.starts = int_list(n, args, 1, "starts").value_or(std::vector<std::int64_t>{});
    s.ends = int_list(n, args, 2, "ends").value_or(std::vector<std::int64_t>{});
    axes = int_list(n, args, 3, "axes");
    steps = int_list(n, args, 4, "steps");
  }
  if (!axes) {
    axes.emplace();
    for (std::size_t i = 0; i < s.starts.size(); ++i) axes->push_back(static_cast<std::int64_t>(i));
  }
  s.steps = steps.value_or(std::vector<std::int64_t>(s.starts.size(), 1));
  s.axes = *axes;
  for (std::int64_t& a : s.axes) a = normalize_axis(a, rank, node_label(n));
  std::vector<std::int64_t> sorted = s.axes;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    throw ModelError(ctx + ": axes " + to_string(*axes) + " repeat an axis");
  }
  if (s.starts.size() != s.ends.size() || s.axes.size() != s.starts.size() ||
      s.steps.size() != s.starts.size()) {
    throw ModelError(ctx + ": starts, ends, axes and steps must have the same length");
  }
  return s;
}

namespace {

/// Squeeze/Unsqueeze axes: the attribute before opset 13, input 1 from 13 on.
std::optional<std::vector<std::int64_t>> axes_operand(const Node& n, const Args& args, std::int64_t opset) {
  const std::string ctx = node_label(n);
  if (opset < 13) {
    check_known_attributes(n.attributes, {"axes"}, ctx);
    return get_ints(n.attributes, "axes", ctx);
  }
  check_known_attributes(n.attributes, {}, ctx);
  return int_list(n, args, 1, "axes");
}

}  // namespace

std::vector<std::int64_t> squeeze_axes(const Node& n, const Args& args, const Shape& in,
                                       std::int64_t opset) {
  const std::string ctx = node_label(n);
  const auto rank = static_cast<std::int64_t>(in.size());
  const std::optional<std::vector<std::int64_t>> axes = axes_operand(n, args, opset);
  std::vector<std::int64_t> out;
  if (!axes) {
    for (std::int64_t d = 0; d < rank; ++d) {
      if (in[static_cast<std::size_t>(d)] == 1) out.push_back(d);
    }
    return out;
  }
  out = normalized_sorted(*axes, rank, n);
  for (std::int64_t a : out) {
    if (in[static_cast<std::size_t>(a)] != 1) {
      throw ModelError(ctx + ": cannot squeeze axis " + std::to_string(a) + " of size " +
                       std::to_string(in[static_cast<std::size_t>(a)]));
    }
  }
  return out;
}

std::vector<std::int64_t> unsqueeze_axes(const Node& n, const Args& args, std::int64_t in_rank,
                                         std::int64_t opset) {
  const std::optional<std::vector<std::int64_t>> axes = axes_operand(n, args, opset);
  if (!axes) throw ModelError(node_label(n) + ": axes are required");
  return normalized_sorted(*axes, in_rank + static_cast<std::int64_t>(axes->size()), n);
}

Shape unsqueezed(const Shape& in, const std::vector<std::int64_t>& axes) {
  Shape out;
  std::size_t next = 0, src = 0;
  const std::size_t rank = in.size() + axes.size();
  for (std::size_t d = 0; d < rank; ++d) {
    if (next < axes.size() && axes[next] == static_cast<std::int64_t>(d)) {
      out.push_back(1);
      ++next;
    } else {
      out.push_back(in[src++]);
    }
  }
  return out;
}

PadArgs pad_args(const Node& n, const Args& args, std::size_t rank, std::int64_t opset) {
  const std::string ctx = node_label(n);
  PadArgs p;
  Shape pads;
  if (opset < 11) {
    check_known_attributes(n.attributes, {"mode", "pads", "value"}, ctx);
    pads = get_ints(n.attributes, "pads", ctx).value_or(Shape{});
    p.value = get_float(n.attributes, "value", 0.0, ctx);
  } else {
    check_known_attributes(n.attributes, {"mode"}, ctx);
    pads = int_list(n, args, 1, "pads").value_or(Shape{});
    if (n.inputs.size() > 2 && n.inputs[2] != kNoTensor) {
      const TensorValue* v = args.size() > 2 ? args[2] : nullptr;
      if (!v || v->data.size() != 1) throw ModelError(ctx + ": constant_value must be a known scalar");
      p.value = v->data[0];
    }
  }
  const std::string mode = get_string(n.attributes, "mode", "constant", ctx);
  if (mode == "reflect") p.mode = PadMode::Reflect;
  else if (mode == "edge") p.mode = PadMode::Edge;
  else if (mode != "constant") {
    throw ModelError(ctx + ": unsupported attribute value mode='" + mode +
                     "'; supported: 'constant', 'reflect', 'edge'");
  }
  for (std::int64_t v : pads) {
    if (v < -kMaxElements || v > kMaxElements) throw ModelError(ctx + ": pad " + std::to_string(v) + " is out of range");
  }
  if (pads.size() != 2 * rank) {
    throw ModelError(ctx + ": pads needs " + std::to_string(2 * rank) + " entries, got " +
                     std::to_string(pads.size()));
  }
  p.begin.assign(pads.begin(), pads.begin() + static_cast<std::ptrdiff_t>(rank));
  p.end.assign(pads.begin() + static_cast<std::ptrdiff_t>(rank), pads.end());
  return p;
}

DataType cast_target(const Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {"saturate", "to"}, ctx);
  const std::int64_t to = get_int(n.attributes, "to", -1, ctx);
  switch (to) {
    case 1: return DataType::Float32;   // FLOAT
    case 11: return DataType::Float64;  // DOUBLE
    case 2: case 3: case 4: case 5: case 6: case 7: case 12: case 13: return DataType::Int64;
    case 9: return DataType::Bool;
    default:
      throw ModelError(ctx + ": unsupported target type to=" + std::to_string(to) +
                       "; supported: FLOAT, DOUBLE, integer types, BOOL");
  }
}

std::vector<std::int64_t> reduce_axes(const Node& n, std::int64_t rank, bool& keepdims) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {"axes", "keepdims"}, ctx);
  keepdims = get_int(n.attributes, "keepdims", 1, ctx) != 0;
  if (auto axes = get_ints(n.attributes, "axes", ctx)) return normalized_sorted(*axes, rank, n);
  std::vector<std::int64_t> all;
  for (std::int64_t d = 0; d < rank; ++d) all.push_back(d);
  return all;
}

}  // namespace heinfer::model::detail
