// Small ONNX models built with the ONNX protobuf API, for the seeds of the model target
// (tools/fuzz_corpus.cpp) and the graph the parameters-JSON target plans for: a few
// operators each, per-sample inputs of a few dozen elements, opset 13.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace heinfer::fuzz {

class ModelBuilder {
 public:
  /// A model with one float input `x` of shape [batch, dims...] (batch symbolic "N").
  explicit ModelBuilder(std::vector<std::int64_t> dims) {
    m_.set_ir_version(7);
    m_.set_producer_name("heinfer-fuzz-corpus");
    m_.add_opset_import()->set_version(13);
    auto* in = m_.mutable_graph()->add_input();
    in->set_name("x");
    auto* t = in->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    t->mutable_shape()->add_dim()->set_dim_param("N");
    for (std::int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
    m_.mutable_graph()->set_name("fuzz");
  }

  /// A float initializer with deterministic small values.
  std::string constant(const std::string& name, std::vector<std::int64_t> dims) {
    auto* t = m_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    std::int64_t n = 1;
    for (std::int64_t d : dims) {
      t->add_dims(d);
      n *= d;
    }
    for (std::int64_t i = 0; i < n; ++i) t->add_float_data(static_cast<float>((i * 7 % 11) - 5) / 8.0f);
    return name;
  }

  /// An int64 initializer (Reshape shapes, Pad pads).
  std::string int64s(const std::string& name, const std::vector<std::int64_t>& values) {
    auto* t = m_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<std::int64_t>(values.size()));
    for (std::int64_t v : values) t->add_int64_data(v);
    return name;
  }

  /// Appends a node; returns its output name.
  std::string node(const std::string& op, std::vector<std::string> inputs,
                   std::vector<std::pair<std::string, std::vector<std::int64_t>>> ints = {},
                   std::vector<std::pair<std::string, float>> floats = {}) {
    auto* n = m_.mutable_graph()->add_node();
    const std::string out = op + "_" + std::to_string(m_.graph().node_size());
    n->set_op_type(op);
    n->set_name(out);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(out);
    for (const auto& [name, v] : ints) {
      auto* a = n->add_attribute();
      a->set_name(name);
      if (v.size() == 1 && name != "kernel_shape" && name != "strides" && name != "pads" && name != "perm") {
        a->set_type(onnx::AttributeProto::INT);
        a->set_i(v[0]);
      } else {
        a->set_type(onnx::AttributeProto::INTS);
        for (std::int64_t x : v) a->add_ints(x);
      }
    }
    for (const auto& [name, v] : floats) {
      auto* a = n->add_attribute();
      a->set_name(name);
      a->set_type(onnx::AttributeProto::FLOAT);
      a->set_f(v);
    }
    return out;
  }

  /// Declares `name` the graph output; returns the serialized model.
  std::string finish(const std::string& name) {
    auto* o = m_.mutable_graph()->add_output();
    o->set_name(name);
    o->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    return m_.SerializeAsString();
  }

 private:
  onnx::ModelProto m_;
};

/// Gemm, Relu, Gemm: the graph of the parameters-JSON target (one client-aided round).
inline std::string mlp_model() {
  ModelBuilder b({8});
  std::string y = b.node("Gemm", {"x", b.constant("w1", {4, 8}), b.constant("b1", {4})}, {{"transB", {1}}});
  y = b.node("Relu", {y});
  y = b.node("Gemm", {y, b.constant("w2", {3, 4}), b.constant("b2", {3})}, {{"transB", {1}}});
  return b.finish(y);
}

/// The seeds of the model target: one model per family of operators.
inline std::vector<std::pair<std::string, std::string>> seed_models() {
  std::vector<std::pair<std::string, std::string>> out;
  out.emplace_back("mlp_relu", mlp_model());
  {  // CryptoNets-like: Conv, square, average pool, Flatten, Gemm, Softmax
    ModelBuilder b({1, 6, 6});
    std::string y = b.node("Conv", {"x", b.constant("k", {2, 1, 3, 3}), b.constant("kb", {2})},
                           {{"kernel_shape", {3, 3}}, {"strides", {1, 1}}, {"pads", {1, 1, 1, 1}}});
    y = b.node("Mul", {y, y});
    y = b.node("AveragePool", {y}, {{"kernel_shape", {2, 2}}, {"strides", {2, 2}}});
    y = b.node("Flatten", {y}, {{"axis", {1}}});
    y = b.node("Gemm", {y, b.constant("w", {3, 18}), b.constant("b", {3})}, {{"transB", {1}}});
    y = b.node("Softmax", {y}, {{"axis", {1}}});
    out.emplace_back("conv_square_pool", b.finish(y));
  }
  {  // Conv, BatchNormalization, Relu, MaxPool, Reshape, MatMul, Add, LogSoftmax
    ModelBuilder b({2, 4, 4});
    std::string y = b.node("Conv", {"x", b.constant("k", {2, 2, 3, 3})},
                           {{"kernel_shape", {3, 3}}, {"pads", {1, 1, 1, 1}}});
    y = b.node("BatchNormalization",
               {y, b.constant("s", {2}), b.constant("bb", {2}), b.constant("m", {2}), b.constant("v", {2})},
               {}, {{"epsilon", 1e-5f}});
    y = b.node("Relu", {y});
    y = b.node("MaxPool", {y}, {{"kernel_shape", {2, 2}}, {"strides", {2, 2}}});
    y = b.node("Reshape", {y, b.int64s("shape", {-1, 8})});
    y = b.node("MatMul", {y, b.constant("w", {8, 3})});
    y = b.node("Add", {y, b.constant("c", {3})});
    y = b.node("LogSoftmax", {y}, {{"axis", {1}}});
    out.emplace_back("conv_bn_relu_maxpool", b.finish(y));
  }
  {  // Pad, GlobalAveragePool, Clip, LeakyRelu, Transpose, Concat, Sub, Div
    ModelBuilder b({2, 3, 3});
    std::string p = b.node("Pad", {"x", b.int64s("pads", {0, 0, 0, 1, 0, 0, 0, 1})});
    std::string g = b.node("GlobalAveragePool", {p});
    std::string c = b.node("Clip", {g}, {}, {});
    std::string l = b.node("LeakyRelu", {c}, {}, {{"alpha", 0.1f}});
    std::string t = b.node("Transpose", {l}, {{"perm", {0, 2, 3, 1}}});
    std::string k = b.node("Concat", {t, t}, {{"axis", {3}}});
    std::string s = b.node("Sub", {k, b.constant("s", {4})});
    std::string d = b.node("Div", {s, b.constant("d", {1})});
    std::string f = b.node("Flatten", {d}, {{"axis", {1}}});
    out.emplace_back("pad_gap_clip_concat", b.finish(f));
  }
  return out;
}

}  // namespace heinfer::fuzz
