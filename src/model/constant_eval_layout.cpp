// Constant evaluation of the shape and data-movement operators (element maps shared with
// the executors: model/element_map.h).
#include <algorithm>
#include <cmath>

#include "model/constant_eval_ops.h"
#include "model/error.h"
#include "model/infer_common.h"

namespace heinfer::model::detail {
namespace {

const TensorValue& operand(const Node& n, const Args& in, std::size_t i) {
  if (i >= in.size() || !in[i]) throw ModelError(node_label(n) + ": missing input " + std::to_string(i));
  return *in[i];
}

TensorValue mapped(const TensorValue& x, const ElementMap& m, double fill = 0.0) {
  return {m.out, x.dtype, apply_element_map(m, x.data, fill), {}};
}

TensorValue reshape(const Node& n, const Args& in) {
  const std::string ctx = node_label(n);
  const TensorValue& data = operand(n, in, 0);
  Shape target = int_list(n, in, 1, "shape").value_or(Shape{});
  const bool allowzero = get_int(n.attributes, "allowzero", 0, ctx) != 0;
  const std::int64_t total = numel(data.dims);
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (target[i] == 0 && !allowzero) {
      if (i >= data.dims.size()) throw ModelError(ctx + ": shape 0 refers to a missing dim");
      target[i] = data.dims[i];
    }
    if (target[i] == -1) {
      if (infer >= 0) throw ModelError(ctx + ": more than one -1 in the target shape");
      infer = static_cast<int>(i);
    } else if (target[i] < 0) {
      throw ModelError(ctx + ": invalid target dim " + std::to_string(target[i]));
    } else {
      if (target[i] > 0 && known > kMaxElements / target[i]) throw ModelError(ctx + ": the target shape is too large");
      known *= target[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || total % known != 0) throw ModelError(ctx + ": cannot infer the -1 dim");
    target[static_cast<std::size_t>(infer)] = total / known;
  }
  if (numel(target) != total) {
    throw ModelError(ctx + ": cannot reshape " + to_string(data.dims) + " into " + to_string(target));
  }
  return {target, data.dtype, data.data, {}};
}

TensorValue flatten(const Node& n, const Args& in) {
  const TensorValue& data = operand(n, in, 0);
  const auto rank = static_cast<std::int64_t>(data.dims.size());
  const std::int64_t axis = get_int(n.attributes, "axis", 1, node_label(n));
  const std::int64_t a = normalize_axis(axis, rank, node_label(n), true);
  const std::int64_t outer = numel(Shape(data.dims.begin(), data.dims.begin() + a));
  return {{outer, numel(data.dims) / std::max<std::int64_t>(outer, 1)}, data.dtype, data.data, {}};
}

TensorValue transpose(const Node& n, const Args& in) {
  const TensorValue& data = operand(n, in, 0);
  const std::size_t rank = data.dims.size();
  std::vector<std::int64_t> perm(rank);
  for (std::size_t i = 0; i < rank; ++i) perm[i] = static_cast<std::int64_t>(rank - 1 - i);
  if (auto p = get_ints(n.attributes, "perm", node_label(n))) perm = *p;
  std::vector<std::int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < rank; ++i) {
    if (sorted.size() != rank || sorted[i] != static_cast<std::int64_t>(i)) {
      throw ModelError(node_label(n) + ": perm is not a permutation of the axes");
    }
  }
  return mapped(data, transpose_map(data.dims, perm));
}

TensorValue concat(const Node& n, const Args& in) {
  const std::string ctx = node_label(n);
  const TensorValue& first = operand(n, in, 0);
  const auto rank = static_cast<std::int64_t>(first.dims.size());
  const std::int64_t axis = normalize_axis(get_int(n.attributes, "axis", 0, ctx), rank, ctx);
  Shape out = first.dims;
  out[static_cast<std::size_t>(axis)] = 0;
  for (std::size_t i = 0; i < n.inputs.size(); ++i) {
    const TensorValue& t = operand(n, in, i);
    for (std::int64_t d = 0; d < rank; ++d) {
      const auto du = static_cast<std::size_t>(d);
      if (t.dims.size() != first.dims.size() || (d != axis && t.dims[du] != first.dims[du])) {
        throw ModelError(ctx + ": input shapes " + to_string(first.dims) + " and " + to_string(t.dims) +
                         " differ outside the concat axis");
      }
    }
    out[static_cast<std::size_t>(axis)] += t.dims[static_cast<std::size_t>(axis)];
  }
  const std::int64_t outer = numel(Shape(out.begin(), out.begin() + axis));
  TensorValue r{out, first.dtype, {}, {}};
  r.data.reserve(static_cast<std::size_t>(numel(out)));
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::size_t i = 0; i < n.inputs.size(); ++i) {
      const TensorValue& t = operand(n, in, i);
      const std::int64_t chunk = numel(t.dims) / std::max<std::int64_t>(outer, 1);
      const auto begin = t.data.begin() + o * chunk;
      r.data.insert(r.data.end(), begin, begin + chunk);
    }
  }
  return r;
}

TensorValue gather(const Node& n, const Args& in) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {"axis"}, ctx);
  const TensorValue& data = operand(n, in, 0);
  const TensorValue& idx = operand(n, in, 1);
  if (idx.dtype != DataType::Int64) throw ModelError(ctx + ": indices must be integers");
  const std::int64_t axis = normalize_axis(get_int(n.attributes, "axis", 0, ctx),
                                    static_cast<std::int64_t>(data.dims.size()), ctx);
  const std::vector<std::int64_t> indices = to_int64s(idx.data, ctx);
  return mapped(data, gather_map(data.dims, axis, idx.dims, indices, ctx));
}

TensorValue range(const Node& n, const Args& in) {
  const std::string ctx = node_label(n);
  const double start = operand(n, in, 0).data.at(0), limit = operand(n, in, 1).data.at(0),
               delta = operand(n, in, 2).data.at(0);
  if (delta == 0) throw ModelError(ctx + ": delta must not be 0");
  const double count = std::max(std::ceil((limit - start) / delta), 0.0);
  if (count > static_cast<double>(kMaxComputedElements)) {
    throw ModelError(ctx + ": a range of more than " + std::to_string(kMaxComputedElements) + " elements");
  }
  TensorValue r{{static_cast<std::int64_t>(count)}, operand(n, in, 0).dtype, {}, {}};
  for (std::int64_t i = 0; i < r.dims[0]; ++i) r.data.push_back(start + static_cast<double>(i) * delta);
  return r;
}

TensorValue constant_of_shape(const Node& n, const Args& in) {
  const Shape dims = int_list(n, in, 0, "shape").value_or(Shape{});
  for (std::int64_t d : dims) {
    if (d < 0) throw ModelError(node_label(n) + ": negative dim " + std::to_string(d));
  }
  computed_elements(dims, node_label(n));
  TensorValue r{dims, DataType::Float32, {}, {}};
  double value = 0.0;
  if (auto it = n.attributes.find("value"); it != n.attributes.end()) {
    const Attribute& a = it->second;
    if (a.kind != Attribute::Kind::Tensor || a.floats.size() != 1) {
      throw ModelError(node_label(n) + ": value must be a one-element tensor");
    }
    value = a.floats[0];
    r.dtype = a.i == 7 ? DataType::Int64 : a.i == 9 ? DataType::Bool
              : a.i == 11 ? DataType::Float64 : DataType::Float32;
  }
  r.data.assign(static_cast<std::size_t>(numel(dims)), value);
  return r;
}

TensorValue reduce_mean(const Node& n, const Args& in) {
  const TensorValue& x = operand(n, in, 0);
  bool keepdims = true;
  const auto axes = reduce_axes(n, static_cast<std::int64_t>(x.dims.size()), keepdims);
  Shape kept = x.dims;
  for (std::int64_t a : axes) kept[static_cast<std::size_t>(a)] = 1;
  const Shape strides = broadcast_strides(kept, x.dims);
  TensorValue r{kept, x.dtype, std::vector<double>(static_cast<std::size_t>(numel(kept)), 0.0), {}};
  const double share = static_cast<double>(numel(kept)) / static_cast<double>(std::max<std::int64_t>(numel(x.dims), 1));
  std::vector<std::int64_t> idx(x.dims.size(), 0);
  for (double v : x.data) {
    std::int64_t o = 0;
    for (std::size_t d = 0; d < idx.size(); ++d) o += idx[d] * strides[d];
    r.data[static_cast<std::size_t>(o)] += v * share;
    for (std::size_t d = idx.size(); d-- > 0;) {
      if (++idx[d] < x.dims[d]) break;
      idx[d] = 0;
    }
  }
  if (!keepdims) {
    Shape out;
    for (std::size_t d = 0; d < kept.size(); ++d) {
      if (!std::binary_search(axes.begin(), axes.end(), static_cast<std::int64_t>(d))) out.push_back(kept[d]);
    }
    r.dims = out;
  }
  return r;
}

}  // namespace

bool is_layout_op(OpType op) {
  switch (op) {
    case OpType::Identity: case OpType::Dropout: case OpType::Reshape: case OpType::Flatten:
    case OpType::Transpose: case OpType::Concat: case OpType::Gather: case OpType::Slice:
    case OpType::Squeeze: case OpType::Unsqueeze: case OpType::Expand: case OpType::Pad:
    case OpType::Shape: case OpType::Size: case OpType::ConstantOfShape: case OpType::Range:
    case OpType::ReduceMean: return true;
    default: return false;
  }
}

TensorValue eval_layout(const Node& n, const Args& in, std::int64_t opset) {
  const std::string ctx = node_label(n);
  switch (n.op) {
    case OpType::Identity:
    case OpType::Dropout: {
      TensorValue r = operand(n, in, 0);
      r.batch_coeff.clear();
      return r;
    }
    case OpType::Reshape: return reshape(n, in);
    case OpType::Flatten: return flatten(n, in);
    case OpType::Transpose: return transpose(n, in);
    case OpType::Concat: return concat(n, in);
    case OpType::Gather: return gather(n, in);
    case OpType::Slice: {
      const TensorValue& x = operand(n, in, 0);
      const SliceArgs s = slice_args(n, in, static_cast<std::int64_t>(x.dims.size()), opset);
      return mapped(x, slice_map(x.dims, s.starts, s.ends, s.axes, s.steps, ctx));
    }
    case OpType::Squeeze: {
      TensorValue r = operand(n, in, 0);
      const auto axes = squeeze_axes(n, in, r.dims, opset);
      Shape out;
      for (std::size_t d = 0; d < r.dims.size(); ++d) {
        if (!std::binary_search(axes.begin(), axes.end(), static_cast<std::int64_t>(d))) out.push_back(r.dims[d]);
      }
      r.dims = out;
      r.batch_coeff.clear();
      return r;
    }
    case OpType::Unsqueeze: {
      TensorValue r = operand(n, in, 0);
      const auto axes = unsqueeze_axes(n, in, static_cast<std::int64_t>(r.dims.size()), opset);
      r.dims = unsqueezed(r.dims, axes);
      r.batch_coeff.clear();
      return r;
    }
    case OpType::Expand: {
      const TensorValue& x = operand(n, in, 0);
      return mapped(x, expand_map(x.dims, int_list(n, in, 1, "shape").value_or(Shape{}), ctx));
    }
    case OpType::Pad: {
      const TensorValue& x = operand(n, in, 0);
      const PadArgs p = pad_args(n, in, x.dims.size(), opset);
      return mapped(x, pad_map(x.dims, p.begin, p.end, p.mode, ctx), p.value);
    }
    case OpType::Shape: {
      const TensorValue& x = operand(n, in, 0);
      check_known_attributes(n.attributes, {"end", "start"}, ctx);
      const auto rank = static_cast<std::int64_t>(x.dims.size());
      auto clampi = [&](std::int64_t v) { return std::clamp(v < 0 ? v + rank : v, std::int64_t{0}, rank); };
      const std::int64_t s = clampi(get_int(n.attributes, "start", 0, ctx));
      const std::int64_t e = clampi(get_int(n.attributes, "end", rank, ctx));
      TensorValue r{{std::max<std::int64_t>(e - s, 0)}, DataType::Int64, {}, {}};
      for (std::int64_t d = s; d < e; ++d) r.data.push_back(static_cast<double>(x.dims[static_cast<std::size_t>(d)]));
      return r;
    }
    case OpType::Size:
      return {{}, DataType::Int64, {static_cast<double>(numel(operand(n, in, 0).dims))}, {}};
    case OpType::ConstantOfShape: return constant_of_shape(n, in);
    case OpType::Range: return range(n, in);
    case OpType::ReduceMean: return reduce_mean(n, in);
    default: throw ModelError(ctx + ": not a shape or data-movement operator");
  }
}

}  // namespace heinfer::model::detail
