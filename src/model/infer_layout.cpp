// Shape inference of the data-movement ops: Flatten, Reshape, Transpose, Concat, Pad.
#include "model/element_map.h"
#include "model/infer_common.h"
#include "model/op_args.h"

namespace heinfer::model::detail {

void infer_flatten(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {"axis"}, ctx);
  const Shape xs = activation_input(c.g, n, 0, "input").shape;
  const auto rank = static_cast<std::int64_t>(xs.size()) + 1;
  const std::int64_t axis = normalize_axis(get_int(n.attributes, "axis", 1, ctx), rank, ctx, true);
  // Output [prod(dims[:axis]), prod(dims[axis:])]; dim 0 stays the batch iff the
  // per-sample dims before the axis have size 1.
  if (axis == 0 || numel(Shape(xs.begin(), xs.begin() + axis - 1)) != 1) {
    throw_batch_axis(n, "Flatten with axis=" + std::to_string(axis) +
                            " merges per-sample dims into the batch dim");
  }
  keep_first_output(c, n);
  output(c.g, n).shape = {numel(xs)};
  n.params = NoParams{};
}

void infer_reshape(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {"allowzero"}, ctx);
  const Shape xs = activation_input(c.g, n, 0, "data").shape;
  const Tensor& st = constant_input(c.g, n, 1, "shape");
  if (st.dtype != DataType::Int64 || st.shape.size() != 1) {
    throw ModelError(ctx + ": shape must be a 1-D int64 constant");
  }
  Shape s = to_int64s(st.data, ctx);
  // A target computed from Shape(x): dim 0 must be exactly N, no other dim may depend on it.
  bool symbolic_batch = false;
  const Shape coeff = to_int64s(st.batch_coeff, ctx);
  for (std::size_t i = 0; i < coeff.size(); ++i) {
    if (coeff[i] == 0) continue;
    if (i != 0 || coeff[0] != 1 || s[0] != 0) {
      throw_batch_axis(n, "Reshape target dim " + std::to_string(i) + " is " + std::to_string(coeff[i]) + " * N + " +
                              std::to_string(s[i]) + " (N: the batch size)");
    }
    symbolic_batch = true;
  }
  if (symbolic_batch) s[0] = -1;
  const bool allowzero = get_int(n.attributes, "allowzero", 0, ctx) != 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 0 && allowzero) throw ModelError(ctx + ": zero-size dims are not supported");
    if (s[i] == 0 && i > 0) {
      if (i > xs.size()) throw ModelError(ctx + ": shape value 0 at dim " + std::to_string(i) + " copies a dim the input does not have");
      s[i] = xs[i - 1];
    }
    if (s[i] < -1) throw ModelError(ctx + ": invalid shape value " + std::to_string(s[i]));
  }
  const std::string target = to_string(to_int64s(st.data, ctx));
  if (s.empty()) throw_batch_axis(n, "Reshape to a scalar drops the batch dim");
  Shape rest(s.begin() + 1, s.end());
  std::int64_t known = 1, minus = -1;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == -1) {
      if (minus >= 0) throw ModelError(ctx + ": more than one -1 in shape " + target);
      minus = static_cast<std::int64_t>(i);
    } else {
      if (rest[i] > 0 && known > kMaxElements / rest[i]) throw ModelError(ctx + ": the target shape is too large");
      known *= rest[i];
    }
  }
  const std::int64_t total = numel(xs);
  const bool batch_kept = symbolic_batch || s[0] == 0 || (s[0] == -1 && minus < 0 && known == total) ||
                          (s[0] > 0 && s[0] == c.g.declared_batch);
  if (!batch_kept) {
    throw_batch_axis(n, "Reshape to " + target + " changes dim 0 (the batch" +
                            (c.g.declared_batch ? " = " + std::to_string(c.g.declared_batch) : std::string()) +
                            "); use 0 or -1 for dim 0");
  }
  if (minus >= 0) {
    if (known == 0 || total % known != 0) {
      throw ModelError(ctx + ": cannot reshape per-sample " + to_string(xs) + " into " + target);
    }
    rest[static_cast<std::size_t>(minus)] = total / known;
  }
  if (numel(rest) != total) {
    throw ModelError(ctx + ": cannot reshape per-sample " + to_string(xs) + " (" +
                     std::to_string(total) + " elements) into " + target);
  }
  set_output(c, n, 1, rest, NoParams{});
}

void infer_transpose(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {"perm"}, ctx);
  const Shape xs = activation_input(c.g, n, 0, "data").shape;
  const std::size_t rank = xs.size() + 1;
  Shape perm(rank);
  for (std::size_t i = 0; i < rank; ++i) perm[i] = static_cast<std::int64_t>(rank - 1 - i);
  if (auto p = get_ints(n.attributes, "perm", ctx)) perm = *p;
  if (perm.size() != rank) {
    throw ModelError(ctx + ": perm " + to_string(perm) + " needs " + std::to_string(rank) + " entries");
  }
  std::vector<bool> seen(rank, false);
  for (std::int64_t v : perm) {
    if (v < 0 || v >= static_cast<std::int64_t>(rank) ||
        seen[static_cast<std::size_t>(v)]) {
      throw ModelError(ctx + ": perm " + to_string(perm) + " is not a permutation of " +
                       std::to_string(rank) + " axes");
    }
    seen[static_cast<std::size_t>(v)] = true;
  }
  if (perm[0] != 0) throw_batch_axis(n, "Transpose with perm " + to_string(perm) + " moves the batch axis");
  TransposeParams p;
  Shape out;
  for (std::size_t i = 1; i < rank; ++i) {
    p.perm.push_back(perm[i] - 1);
    out.push_back(xs[static_cast<std::size_t>(perm[i] - 1)]);
  }
  keep_first_output(c, n);
  output(c.g, n).shape = out;
  n.params = p;
}

void infer_concat(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {"axis"}, ctx);
  if (!n.attributes.count("axis")) throw ModelError(ctx + ": missing required attribute 'axis'");
  std::size_t rank = 0;
  for (std::size_t i = 0; i < n.inputs.size(); ++i) {
    const Tensor& t = input(c.g, n, i);
    if (!t.is_constant) rank = t.shape.size() + 1;
  }
  const std::int64_t axis = normalize_axis(get_int(n.attributes, "axis", 0, ctx),
                                           static_cast<std::int64_t>(rank), ctx);
  if (axis == 0) throw_batch_axis(n, "Concat along axis 0 joins batches");
  const auto a = static_cast<std::size_t>(axis - 1);
  Shape out;
  for (std::size_t i = 0; i < n.inputs.size(); ++i) {
    const Tensor& t = input(c.g, n, i);
    Shape view = t.shape;
    if (t.is_constant) {
      if (view.size() != rank || view[0] != 1) {
        throw ModelError(ctx + ": constant input '" + t.name + "' " + to_string(t.shape) +
                         " must have rank " + std::to_string(rank) + " and dim 0 of size 1");
      }
      view.erase(view.begin());
    }
    if (i == 0) {
      out = view;
      continue;
    }
    bool ok = view.size() == out.size();
    for (std::size_t d = 0; ok && d < view.size(); ++d) ok = d == a || view[d] == out[d];
    if (!ok) {
      throw ModelError(ctx + ": input shapes " + to_string(out) + " and " + to_string(view) +
                       " (per sample) differ outside the concat axis");
    }
    out[a] += view[a];
  }
  keep_first_output(c, n);
  output(c.g, n).shape = out;
  n.params = ConcatParams{static_cast<std::int64_t>(a)};
}

void infer_pad(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  const Shape xs = activation_input(c.g, n, 0, "data").shape;
  std::vector<TensorValue> storage;
  const PadArgs a = pad_args(n, known_inputs(c.g, n, storage), xs.size() + 1, c.g.opset);
  if (a.begin[0] != 0 || a.end[0] != 0) throw_batch_axis(n, "Pad of dim 0");
  const Shape begin(a.begin.begin() + 1, a.begin.end()), end(a.end.begin() + 1, a.end.end());
  ElementMap m = pad_map(xs, begin, end, a.mode, ctx);
  set_output(c, n, 1, m.out, ElementMapParams{std::move(m.source), a.value});
}

}  // namespace heinfer::model::detail
