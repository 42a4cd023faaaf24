#include "model/onnx_import.h"

#include <google/protobuf/io/coded_stream.h>
#include <onnx/onnx_pb.h>

#include <climits>
#include <fstream>
#include <map>
#include <queue>
#include <sstream>

#include "model/error.h"
#include "model/onnx_tensor.h"

namespace heinfer::model {
namespace {

Attribute convert_attribute(const onnx::AttributeProto& a) {
  Attribute out;
  out.onnx_type = onnx::AttributeProto_AttributeType_Name(a.type());
  switch (a.type()) {
    case onnx::AttributeProto::INT: out.kind = Attribute::Kind::Int; out.i = a.i(); break;
    case onnx::AttributeProto::FLOAT: out.kind = Attribute::Kind::Float; out.f = a.f(); break;
    case onnx::AttributeProto::STRING: out.kind = Attribute::Kind::String; out.s = a.s(); break;
    case onnx::AttributeProto::INTS:
      out.kind = Attribute::Kind::Ints;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::FLOATS:
      out.kind = Attribute::Kind::Floats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::TENSOR: {
      std::int64_t count = 1;
      for (std::int64_t d : a.t().dims()) count = d < 0 || d > kMaxTensorAttributeElements ? -1 : count * d;
      if (count < 0 || count > kMaxTensorAttributeElements) break;
      TensorValue v = tensor_from_proto(a.t(), "attribute '" + a.name() + "'");
      out.kind = Attribute::Kind::Tensor;
      out.ints = v.dims;
      out.floats = std::move(v.data);
      out.i = a.t().data_type();
      break;
    }
    default: out.kind = Attribute::Kind::Other; break;
  }
  return out;
}

/// The value of a Constant node (ONNX Constant-1/9/11/12/13).
TensorValue constant_node_value(const onnx::NodeProto& node, const std::string& label) {
  if (node.attribute_size() != 1) {
    throw ModelError(label + ": a Constant node needs exactly one value attribute");
  }
  const onnx::AttributeProto& a = node.attribute(0);
  TensorValue v;
  if (a.name() == "value" && a.type() == onnx::AttributeProto::TENSOR) {
    return tensor_from_proto(a.t(), label + " attribute 'value'");
  }
  if (a.name() == "value_float" && a.type() == onnx::AttributeProto::FLOAT) {
    v.data = {a.f()};
  } else if (a.name() == "value_floats" && a.type() == onnx::AttributeProto::FLOATS) {
    v.data.assign(a.floats().begin(), a.floats().end());
    v.dims = {static_cast<std::int64_t>(v.data.size())};
  } else if (a.name() == "value_int" && a.type() == onnx::AttributeProto::INT) {
    v.dtype = DataType::Int64;
    v.data = {static_cast<double>(a.i())};
  } else if (a.name() == "value_ints" && a.type() == onnx::AttributeProto::INTS) {
    v.dtype = DataType::Int64;
    for (std::int64_t x : a.ints()) v.data.push_back(static_cast<double>(x));
    v.dims = {static_cast<std::int64_t>(v.data.size())};
  } else {
    throw ModelError(label + ": unsupported attribute '" + a.name() + "' of type " +
                     onnx::AttributeProto_AttributeType_Name(a.type()) +
                     "; supported: value (TENSOR), value_float, value_floats, value_int, "
                     "value_ints");
  }
  return v;
}

void add_graph_input(Graph& g, const onnx::ValueInfoProto& vi) {
  const std::string ctx = "graph input '" + vi.name() + "'";
  if (!vi.type().has_tensor_type()) throw ModelError(ctx + ": only tensor inputs are supported");
  const auto& tt = vi.type().tensor_type();
  if (tt.elem_type() != onnx::TensorProto::FLOAT && tt.elem_type() != onnx::TensorProto::DOUBLE) {
    throw ModelError(ctx + ": unsupported data type " + onnx_dtype_name(tt.elem_type()) +
                     "; supported: FLOAT (float32), DOUBLE (float64)");
  }
  if (!tt.has_shape() || tt.shape().dim_size() == 0) {
    throw ModelError(ctx + ": needs a known shape of rank >= 1 (dim 0 is the batch)");
  }
  Shape per_sample;
  for (int d = 1; d < tt.shape().dim_size(); ++d) {
    const auto& dim = tt.shape().dim(d);
    if (!dim.has_dim_value() || dim.dim_value() <= 0) {
      throw ModelError(ctx + ": dim " + std::to_string(d) + " is " +
                       (dim.has_dim_param() ? "symbolic ('" + dim.dim_param() + "')" : "unknown") +
                       "; only the batch dimension (dim 0) may be dynamic");
    }
    per_sample.push_back(dim.dim_value());
  }
  numel(per_sample);
  const TensorId id = add_activation(g, vi.name(), per_sample);
  g.tensors[static_cast<std::size_t>(id)].dtype =
      tt.elem_type() == onnx::TensorProto::DOUBLE ? DataType::Float64 : DataType::Float32;
  if (g.inputs.empty()) {
    const auto& d0 = tt.shape().dim(0);
    g.declared_batch = d0.has_dim_value() && d0.dim_value() > 0 ? d0.dim_value() : 0;
  }
  g.inputs.push_back(id);
}

/// Kahn's algorithm over the node list; the stable order keeps the file order when valid.
std::vector<int> topological_order(const onnx::GraphProto& graph,
                                   const std::map<std::string, int>& producer) {
  const int n = graph.node_size();
  std::vector<int> pending(static_cast<std::size_t>(n), 0);
  std::vector<std::vector<int>> users(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    for (const std::string& in : graph.node(i).input()) {
      auto it = producer.find(in);
      if (in.empty() || it == producer.end()) continue;
      ++pending[static_cast<std::size_t>(i)];
      users[static_cast<std::size_t>(it->second)].push_back(i);
    }
  }
  std::priority_queue<int, std::vector<int>, std::greater<>> ready;
  for (int i = 0; i < n; ++i) {
    if (pending[static_cast<std::size_t>(i)] == 0) ready.push(i);
  }
  std::vector<int> order;
  while (!ready.empty()) {
    const int i = ready.top();
    ready.pop();
    order.push_back(i);
    for (int u : users[static_cast<std::size_t>(i)]) {
      if (--pending[static_cast<std::size_t>(u)] == 0) ready.push(u);
    }
  }
  if (static_cast<int>(order.size()) != n) throw ModelError("the graph has a cycle");
  return order;
}

}  // namespace

onnx::ModelProto parse_onnx(std::string_view bytes, const std::string& source) {
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) {
    throw ModelError(source + ": larger than 2 GiB, the protobuf limit");
  }
  google::protobuf::io::CodedInputStream stream(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                                static_cast<int>(bytes.size()));
  stream.SetTotalBytesLimit(INT_MAX);
  stream.SetRecursionLimit(100);
  onnx::ModelProto model;
  if (!model.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage()) {
    throw ModelError(source + ": not a valid ONNX model (malformed or truncated protobuf)");
  }
  return model;
}

onnx::ModelProto read_onnx_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ModelError("cannot open model file '" + path.string() + "'");
  std::ostringstream buffer;
  buffer << f.rdbuf();
  if (f.bad()) throw ModelError("error reading model file '" + path.string() + "'");
  return parse_onnx(buffer.view(), "model file '" + path.string() + "'");
}

Graph import_onnx(const onnx::ModelProto& model) {
  Graph g;
  bool has_default = false;
  for (const auto& op : model.opset_import()) {
    if (op.domain().empty() || op.domain() == "ai.onnx") {
      g.opset = op.version();
      has_default = true;
    }
  }
  if (!has_default) throw ModelError("model has no opset_import for the default ONNX domain");
  if (g.opset < kMinOpset || g.opset > kMaxOpset) {
    throw ModelError("model uses opset " + std::to_string(g.opset) + "; supported opsets: " +
                     std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset));
  }
  if (!model.has_graph()) throw ModelError("model has no graph");
  const onnx::GraphProto& graph = model.graph();
  if (graph.sparse_initializer_size() > 0) {
    throw ModelError("sparse initializers are not supported");
  }

  std::map<std::string, TensorId> by_name;
  auto define = [&](const std::string& name, TensorId id, const std::string& what) {
    if (!by_name.emplace(name, id).second) {
      throw ModelError(what + " '" + name + "' redefines an existing tensor name");
    }
  };
  for (const auto& init : graph.initializer()) {
    TensorValue v = tensor_from_proto(init, "initializer '" + init.name() + "'");
    define(init.name(), add_constant(g, init.name(), std::move(v.dims), std::move(v.data), v.dtype),
           "initializer");
  }
  for (const auto& vi : graph.input()) {
    if (by_name.count(vi.name())) continue;  // IR < 4 lists initializers as inputs too
    add_graph_input(g, vi);
    define(vi.name(), g.inputs.back(), "graph input");
  }
  if (g.inputs.empty()) throw ModelError("model has no (non-initializer) graph input");

  std::map<std::string, int> producer;
  for (int i = 0; i < graph.node_size(); ++i) {
    for (const std::string& out : graph.node(i).output()) {
      if (!out.empty() && !producer.emplace(out, i).second) {
        throw ModelError("tensor '" + out + "' is produced by more than one node");
      }
    }
  }
  for (int i : topological_order(graph, producer)) {
    const onnx::NodeProto& np = graph.node(i);
    Node node;
    node.name = np.name().empty() ? np.op_type() + "_" + std::to_string(i) : np.name();
    const std::string op_label = "node '" + node.name + "' (op '" + np.op_type() + "')";
    if (!np.domain().empty() && np.domain() != "ai.onnx") {
      throw ModelError(op_label + ": unsupported operator domain '" + np.domain() +
                       "'; only the default ONNX domain is supported");
    }
    const auto op = parse_op_type(np.op_type());
    if (!op) {
      throw ModelError(op_label + ": unsupported operator; supported operators: " +
                       supported_ops_list());
    }
    node.op = *op;
    if (node.op == OpType::Constant) {
      if (np.output_size() != 1) throw ModelError(op_label + ": needs exactly one output");
      TensorValue v = constant_node_value(np, node_label(node));
      define(np.output(0), add_constant(g, np.output(0), std::move(v.dims), std::move(v.data),
                                        v.dtype),
             "Constant output");
      continue;
    }
    for (const std::string& in : np.input()) {
      if (in.empty()) {
        node.inputs.push_back(kNoTensor);
        continue;
      }
      auto it = by_name.find(in);
      if (it == by_name.end()) {
        throw ModelError(node_label(node) + ": input '" + in +
                         "' is not a graph input, an initializer or a node output");
      }
      node.inputs.push_back(it->second);
    }
    for (const std::string& out : np.output()) {
      if (out.empty()) {
        node.outputs.push_back(kNoTensor);
        continue;
      }
      const TensorId id = add_activation(g, out);
      define(out, id, "output of " + node_label(node));
      node.outputs.push_back(id);
    }
    if (node.outputs.empty() || node.outputs[0] == kNoTensor) {
      throw ModelError(node_label(node) + ": has no output");
    }
    for (const auto& a : np.attribute()) node.attributes[a.name()] = convert_attribute(a);
    g.nodes.push_back(std::move(node));
  }
  for (const auto& vi : graph.output()) {
    auto it = by_name.find(vi.name());
    if (it == by_name.end()) {
      throw ModelError("graph output '" + vi.name() + "' is not produced by the graph");
    }
    g.outputs.push_back(it->second);
  }
  if (g.outputs.empty()) throw ModelError("model has no graph output");
  return g;
}

}  // namespace heinfer::model
