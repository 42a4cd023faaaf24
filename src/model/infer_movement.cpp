// Shape inference of the data-movement ops given by element maps (Gather, Slice, Expand),
// the relabelings (Squeeze, Unsqueeze, Cast to a float type) and ReduceMean.
#include <algorithm>
#include <optional>
#include <utility>

#include "model/activation_fn.h"
#include "model/element_map.h"
#include "model/infer_common.h"
#include "model/op_args.h"

namespace heinfer::model::detail {
namespace {

/// Sets the output of a data-movement node given by a per-sample element map.
void set_map(InferContext& c, Node& n, ElementMap m) {
  set_output(c, n, 1, std::move(m.out), ElementMapParams{std::move(m.source), 0.0});
}

}  // namespace

std::size_t replace_node(InferContext& c, std::size_t k, std::vector<Node> nodes) {
  c.use_count.resize(c.g.tensors.size(), 0);
  for (TensorId t : c.g.nodes[k].inputs) {
    if (t != kNoTensor) --c.use_count[static_cast<std::size_t>(t)];
  }
  for (const Node& n : nodes) {
    for (TensorId t : n.inputs) {
      if (t != kNoTensor) ++c.use_count[static_cast<std::size_t>(t)];
    }
  }
  c.g.nodes[k] = std::move(nodes[0]);
  c.g.nodes.insert(c.g.nodes.begin() + static_cast<std::ptrdiff_t>(k) + 1, std::make_move_iterator(nodes.begin() + 1),
                   std::make_move_iterator(nodes.end()));
  return nodes.size() - 1;
}

std::vector<const TensorValue*> known_inputs(const Graph& g, const Node& n,
                                             std::vector<TensorValue>& storage) {
  storage.clear();
  storage.reserve(n.inputs.size());
  std::vector<const TensorValue*> args;
  for (TensorId t : n.inputs) {
    if (t == kNoTensor || !g.tensors[static_cast<std::size_t>(t)].is_constant) {
      args.push_back(nullptr);
      continue;
    }
    storage.push_back(value_of(g.tensors[static_cast<std::size_t>(t)]));
    args.push_back(&storage.back());
  }
  return args;
}

void infer_gather(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {"axis"}, ctx);
  const Shape xs = activation_input(c.g, n, 0, "data").shape;
  std::vector<TensorValue> storage;
  const auto args = known_inputs(c.g, n, storage);
  const TensorValue* idx = args.at(1);
  if (!idx || idx->dtype != DataType::Int64) throw ModelError(ctx + ": indices must be known integers");
  const std::int64_t axis = normalize_axis(get_int(n.attributes, "axis", 0, ctx), static_cast<std::int64_t>(xs.size()) + 1, ctx);
  if (axis == 0) throw_batch_axis(n, "Gather along axis 0 selects samples of the batch");
  const std::vector<std::int64_t> indices = to_int64s(idx->data, ctx);
  set_map(c, n, gather_map(xs, axis - 1, idx->dims, indices, ctx));
}

void infer_slice(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  const Shape xs = activation_input(c.g, n, 0, "data").shape;
  std::vector<TensorValue> storage;
  const auto args = known_inputs(c.g, n, storage);
  SliceArgs s = slice_args(n, args, static_cast<std::int64_t>(xs.size()) + 1, c.g.opset);
  SliceArgs per_sample;
  for (std::size_t k = 0; k < s.axes.size(); ++k) {
    if (s.axes[k] == 0) {
      // Allowed only when it keeps every sample: [0, end >= N) with step 1 for any N.
      if (s.starts[k] != 0 || s.steps[k] != 1 || s.ends[k] < (std::int64_t{1} << 31)) {
        throw_batch_axis(n, "Slice along axis 0 selects samples of the batch");
      }
      continue;
    }
    per_sample.starts.push_back(s.starts[k]);
    per_sample.ends.push_back(s.ends[k]);
    per_sample.axes.push_back(s.axes[k] - 1);
    per_sample.steps.push_back(s.steps[k]);
  }
  ElementMap m = slice_map(xs, per_sample.starts, per_sample.ends, per_sample.axes, per_sample.steps, ctx);
  if (numel(m.out) == 0) throw ModelError(ctx + ": the slice is empty");
  set_map(c, n, std::move(m));
}

void infer_squeeze(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  const Shape xs = activation_input(c.g, n, 0, "data").shape;
  std::vector<TensorValue> storage;
  const auto args = known_inputs(c.g, n, storage);
  Shape full{1};  // dim 0 (the batch) counts as size 1 for the axis rules, and must stay
  full.insert(full.end(), xs.begin(), xs.end());
  Shape out;
  if (n.op == OpType::Squeeze) {
    std::vector<std::int64_t> axes = squeeze_axes(n, args, full, c.g.opset);
    if (!axes.empty() && axes[0] == 0) {
      if ((n.inputs.size() < 2 || n.inputs[1] == kNoTensor) && !n.attributes.count("axes")) axes.erase(axes.begin());  // implicit: the batch is not squeezed
      else throw_batch_axis(n, "Squeeze of axis 0 removes the batch dim");
    }
    for (std::size_t d = 1; d < full.size(); ++d) {
      if (!std::binary_search(axes.begin(), axes.end(), static_cast<std::int64_t>(d))) out.push_back(full[d]);
    }
  } else {
    const auto axes = unsqueeze_axes(n, args, static_cast<std::int64_t>(full.size()), c.g.opset);
    if (axes[0] == 0) throw_batch_axis(n, "Unsqueeze at axis 0 moves the batch dim");
    out = unsqueezed(full, axes);
    out.erase(out.begin());
  }
  set_output(c, n, 1, out, NoParams{});
}

void infer_expand(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  check_known_attributes(n.attributes, {}, ctx);
  const Shape xs = activation_input(c.g, n, 0, "input").shape;
  const Tensor& st = constant_input(c.g, n, 1, "shape");
  if (st.dtype != DataType::Int64 || st.shape.size() != 1) throw ModelError(ctx + ": shape must be a 1-D int64 constant");
  const std::size_t rank = xs.size() + 1;
  if (st.data.size() > rank) throw_batch_axis(n, "Expand to a higher rank moves the batch dim");
  Shape target = to_int64s(st.data, ctx);
  if (target.size() == rank) {
    const bool batch = st.batch_coeff.empty() ? target[0] == 1 : (st.batch_coeff[0] == 1 && target[0] == 0);
    if (!batch) throw_batch_axis(n, "Expand of dim 0 to " + std::to_string(target[0]));
    target.erase(target.begin());
  }
  for (std::size_t i = 0; i < st.batch_coeff.size(); ++i) {
    if (i + st.data.size() != rank && st.batch_coeff[i] != 0) throw ModelError(ctx + ": a per-sample dim depends on the batch size");
  }
  ElementMap m = expand_map(xs, target, ctx);
  if (m.out.size() != xs.size()) throw_batch_axis(n, "Expand to a higher rank moves the batch dim");
  set_map(c, n, std::move(m));
}

void infer_cast(InferContext& c, Node& n) {
  const DataType to = cast_target(n);
  const Shape xs = activation_input(c.g, n, 0, "input").shape;
  if (to != DataType::Float32 && to != DataType::Float64) {
    throw ModelError(node_label(n) + ": Cast of a data-dependent tensor to an integer or boolean type "
                                     "is not supported (CKKS computes on approximate reals)");
  }
  keep_first_output(c, n);
  output(c.g, n).shape = xs;
  n.params = NoParams{};
}

void infer_reduce_mean(InferContext& c, Node& n) {
  const std::string ctx = node_label(n);
  const Shape xs = activation_input(c.g, n, 0, "data").shape;
  bool keepdims = true;
  std::vector<std::int64_t> axes = reduce_axes(n, static_cast<std::int64_t>(xs.size()) + 1, keepdims);
  if (axes[0] == 0) throw_batch_axis(n, "ReduceMean over axis 0 mixes the samples of a batch");
  for (std::size_t i = 1; i < axes.size(); ++i) {
    if (axes[i] != axes[i - 1] + 1) throw ModelError(ctx + ": axes " + to_string(axes) + " must be consecutive");
  }
  // A GemmParams view: X [outer, k, inner] -> Y [outer, 1, inner] with weights 1/k.
  const auto begin = static_cast<std::size_t>(axes.front() - 1), end = static_cast<std::size_t>(axes.back());
  GemmParams p;
  p.outer = numel(Shape(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(begin)));
  p.k = numel(Shape(xs.begin() + static_cast<std::ptrdiff_t>(begin), xs.begin() + static_cast<std::ptrdiff_t>(end)));
  p.inner = numel(Shape(xs.begin() + static_cast<std::ptrdiff_t>(end), xs.end()));
  p.n = 1;
  Shape out;
  for (std::size_t d = 0; d < xs.size(); ++d) {
    if (d < begin || d >= end) out.push_back(xs[d]);
    else if (keepdims) out.push_back(1);
  }
  keep_first_output(c, n);
  output(c.g, n).shape = out;
  const TensorId w = add_constant(c.g, n.name + "/mean_weights", {1, p.k},
                                  std::vector<double>(static_cast<std::size_t>(p.k), 1.0 / static_cast<double>(p.k)));
  c.use_count.resize(c.g.tensors.size(), 0);
  n.inputs = {n.inputs[0], w};
  n.params = p;
}

void negate_as_mul(InferContext& c, Node& n) {
  check_known_attributes(n.attributes, {}, node_label(n));
  activation_input(c.g, n, 0, "X");
  const TensorId minus_one = add_constant(c.g, n.name + "/minus_one", {}, {-1.0});
  c.use_count.resize(c.g.tensors.size(), 0);
  n.inputs = {n.inputs.at(0), minus_one};
  n.op = OpType::Mul;
}

std::size_t expand_split(InferContext& c, std::size_t k) {
  const Node split = c.g.nodes[k];
  const std::string ctx = node_label(split);
  const Tensor& x = input(c.g, split, 0);
  const Shape full = [&] {
    if (x.is_constant) return x.shape;
    Shape s{1};
    s.insert(s.end(), x.shape.begin(), x.shape.end());
    return s;
  }();
  std::vector<TensorValue> storage;
  const auto args = known_inputs(c.g, split, storage);
  std::optional<std::vector<std::int64_t>> sizes;
  if (c.g.opset < 13) {
    check_known_attributes(split.attributes, {"axis", "split"}, ctx);
    sizes = get_ints(split.attributes, "split", ctx);
  } else {
    check_known_attributes(split.attributes, {"axis"}, ctx);
    sizes = int_list(split, args, 1, "split");
  }
  const std::int64_t axis = normalize_axis(get_int(split.attributes, "axis", 0, ctx), static_cast<std::int64_t>(full.size()), ctx);
  if (axis == 0 && !x.is_constant) throw_batch_axis(split, "Split along axis 0 divides the batch");
  const std::int64_t dim = full[static_cast<std::size_t>(axis)];
  const auto parts = static_cast<std::int64_t>(split.outputs.size());
  if (!sizes) {
    if (parts == 0 || dim % parts != 0) {
      throw ModelError(ctx + ": cannot split a dim of " + std::to_string(dim) + " into " + std::to_string(parts) + " equal parts");
    }
    sizes = std::vector<std::int64_t>(static_cast<std::size_t>(parts), dim / parts);
  }
  std::int64_t total = 0;
  for (std::int64_t s : *sizes) total += s < 0 || s > dim ? dim + 1 : s;  // no overflow: each <= dim + 1
  if (static_cast<std::int64_t>(sizes->size()) != parts || total != dim) {
    throw ModelError(ctx + ": split sizes " + to_string(*sizes) + " do not divide a dim of " + std::to_string(dim) +
                     " into " + std::to_string(parts) + " outputs");
  }
  // One Slice per output, in the form the model's opset reads (attributes before 10).
  std::vector<Node> slices;
  std::int64_t start = 0;
  for (std::int64_t i = 0; i < parts; ++i) {
    if (split.outputs[static_cast<std::size_t>(i)] == kNoTensor) {  // an omitted output: no slice
      start += (*sizes)[static_cast<std::size_t>(i)];
      continue;
    }
    Node s;
    s.name = split.name + "/slice" + std::to_string(i);
    s.op = OpType::Slice;
    s.outputs = {split.outputs[static_cast<std::size_t>(i)]};
    const std::int64_t end = start + (*sizes)[static_cast<std::size_t>(i)];
    if (c.g.opset < 10) {
      s.inputs = {split.inputs[0]};
      for (auto [name, v] : {std::pair{"starts", start}, std::pair{"ends", end}, std::pair{"axes", axis}}) {
        Attribute a;
        a.kind = Attribute::Kind::Ints;
        a.ints = {v};
        s.attributes[name] = a;
      }
    } else {
      const TensorId starts = add_constant(c.g, s.name + "/starts", {1}, {static_cast<double>(start)}, DataType::Int64);
      const TensorId ends = add_constant(c.g, s.name + "/ends", {1}, {static_cast<double>(end)}, DataType::Int64);
      const TensorId axes = add_constant(c.g, s.name + "/axes", {1}, {static_cast<double>(axis)}, DataType::Int64);
      s.inputs = {split.inputs[0], starts, ends, axes};
    }
    slices.push_back(std::move(s));
    start = end;
  }
  if (slices.empty()) throw ModelError(ctx + ": every output is omitted");
  return replace_node(c, k, std::move(slices));
}

std::size_t expand_hard_activation(InferContext& c, std::size_t k) {
  const Node hard = c.g.nodes[k];
  const ActivationParams p = activation_params(hard);
  const std::string base = hard.name + "/";
  auto scalar = [&](const std::string& name, double v) { return add_constant(c.g, base + name, {}, {v}); };
  auto node = [&](OpType op, std::string name, std::vector<TensorId> inputs, TensorId output) {
    Node n;
    n.name = base + name;
    n.op = op;
    n.inputs = std::move(inputs);
    n.outputs = {output};
    return n;
  };
  const TensorId x = hard.inputs.at(0), y = hard.outputs.at(0);
  const TensorId scaled = add_activation(c.g, base + "scaled");
  const TensorId shifted = add_activation(c.g, base + "shifted");
  const TensorId gate = hard.op == OpType::HardSwish ? add_activation(c.g, base + "gate") : y;
  std::vector<Node> nodes;
  nodes.push_back(node(OpType::Mul, "mul", {x, scalar("alpha", p.alpha)}, scaled));
  nodes.push_back(node(OpType::Add, "add", {scaled, scalar("beta", p.beta)}, shifted));
  Node clip = node(OpType::Clip, "clip", {shifted}, gate);
  if (c.g.opset < 11) {
    for (auto [name, v] : {std::pair{"min", 0.0}, std::pair{"max", 1.0}}) {
      Attribute a;
      a.kind = Attribute::Kind::Float;
      a.f = v;
      clip.attributes[name] = a;
    }
  } else {
    clip.inputs = {shifted, scalar("zero", 0.0), scalar("one", 1.0)};
  }
  nodes.push_back(std::move(clip));
  if (hard.op == OpType::HardSwish) nodes.push_back(node(OpType::Mul, "mul_x", {x, gate}, y));
  return replace_node(c, k, std::move(nodes));
}

}  // namespace heinfer::model::detail
