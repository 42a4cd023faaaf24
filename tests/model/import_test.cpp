// ONNX import: malformed input and unsupported features are clear ModelErrors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../common/onnx_builder.h"
#include "model/error.h"
#include "model/load.h"
#include "model/onnx_import.h"

namespace heinfer {
namespace {

using model::ModelError;
using test::attr;
using test::ModelBuilder;

/// Expects `f` to throw ModelError whose message contains every fragment.
template <class F>
void expect_model_error(F&& f, std::initializer_list<std::string> fragments) {
  try {
    f();
    ADD_FAILURE() << "no ModelError thrown";
  } catch (const ModelError& e) {
    for (const auto& frag : fragments) {
      EXPECT_NE(std::string(e.what()).find(frag), std::string::npos)
          << "message '" << e.what() << "' lacks '" << frag << "'";
    }
  }
}

ModelBuilder relu_model() {
  ModelBuilder b;
  b.input("x", {2, 3}).output("y");
  b.node("Relu", {"x"}, {"y"}, "act");
  return b;
}

TEST(Import, LoadsSimpleModelWithSymbolicBatch) {
  const model::Graph g = relu_model().load();
  ASSERT_EQ(g.inputs.size(), 1u);
  EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.inputs[0])].shape, (model::Shape{2, 3}));
  EXPECT_EQ(g.declared_batch, 0);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op, model::OpType::Relu);
  EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.nodes[0].outputs[0])].shape, (model::Shape{2, 3}));
}

TEST(Import, StaticBatchIsRecordedButNotPartOfTheShape) {
  ModelBuilder b = relu_model();
  b.proto().mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()
      ->mutable_shape()->mutable_dim(0)->set_dim_value(7);
  const model::Graph g = b.load();
  EXPECT_EQ(g.declared_batch, 7);
  EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.inputs[0])].shape, (model::Shape{2, 3}));
}

TEST(Import, MalformedBytesAreRejected) {
  expect_model_error([] { model::parse_onnx("this is not a protobuf \xff\xff\xff", "junk"); },
                     {"junk", "not a valid ONNX model"});
}

TEST(Import, EveryTruncationIsRejectedWithoutCrashing) {
  ModelBuilder b;
  b.input("x", {4}).output("y");
  b.initializer("w", {4}, {1, 2, 3, 4});
  b.node("Mul", {"x", "w"}, {"y"}, "scale");
  const std::string bytes = b.bytes();
  ASSERT_NO_THROW(b.load());
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    EXPECT_THROW(
        {
          model::Graph g = model::import_onnx(model::parse_onnx(bytes.substr(0, len), "cut"));
          model::prepare_graph(g);
        },
        ModelError)
        << "truncated to " << len << " of " << bytes.size() << " bytes";
  }
}

TEST(Import, MissingFileIsAClearError) {
  expect_model_error([] { model::load_model("/nonexistent/dir/model.onnx"); },
                     {"cannot open model file", "/nonexistent/dir/model.onnx"});
}

TEST(Import, TruncatedFileOnDiskIsRejected) {
  ModelBuilder b = relu_model();
  const std::string bytes = b.bytes();
  const auto path = std::filesystem::temp_directory_path() / "heinfer_truncated.onnx";
  {
    std::ofstream f(path, std::ios::binary);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 3));
  }
  EXPECT_THROW(model::load_model(path), ModelError);
  std::filesystem::remove(path);
}

TEST(Import, UnsupportedOperatorNamesNodeAndOp) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.node("Mish", {"x"}, {"y"}, "gate");
  expect_model_error([&] { b.load(); },
                     {"node 'gate'", "'Mish'", "unsupported operator", "supported operators:", "Conv"});
}

TEST(Import, NonDefaultDomainIsRejected) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.node("Relu", {"x"}, {"y"}, "r").set_domain("com.microsoft");
  expect_model_error([&] { b.load(); }, {"node 'r'", "domain 'com.microsoft'"});
}

TEST(Import, UnsupportedAttributeNamesNodeOpAndAttribute) {
  ModelBuilder b;
  b.input("x", {1, 4, 4}).output("y");
  auto& n = b.node("AveragePool", {"x"}, {"y"}, "pool");
  attr(n, "kernel_shape", std::vector<std::int64_t>{2, 2});
  attr(n, "frobnicate", std::int64_t{1});
  expect_model_error([&] { b.load(); },
                     {"node 'pool' (AveragePool)", "unsupported attribute 'frobnicate'",
                      "count_include_pad"});
}

TEST(Import, UnsupportedAttributeValueIsNamed) {
  ModelBuilder b(11);
  b.input("x", {1, 4, 4}).output("y");
  b.initializer_i64("pads", {8}, {0, 0, 1, 1, 0, 0, 1, 1});
  attr(b.node("Pad", {"x", "pads"}, {"y"}, "pad"), "mode", std::string("wrap"));
  expect_model_error([&] { b.load(); }, {"node 'pad' (Pad)", "mode='wrap'", "supported: 'constant', 'reflect', 'edge'"});
}

TEST(Import, WrongAttributeTypeIsNamed) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  attr(b.node("LeakyRelu", {"x"}, {"y"}, "lr"), "alpha", std::string("big"));
  expect_model_error([&] { b.load(); }, {"node 'lr' (LeakyRelu)", "'alpha'", "STRING", "expected FLOAT"});
}

TEST(Import, UnsupportedInputDtypeIsRejected) {
  ModelBuilder b;
  b.input("x", {3}, onnx::TensorProto::INT32).output("y");
  b.node("Relu", {"x"}, {"y"});
  expect_model_error([&] { b.load(); }, {"graph input 'x'", "INT32", "supported: FLOAT"});
}

TEST(Import, UnsupportedInitializerDtypeIsRejected) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT16);
  t->add_dims(3);
  t->set_raw_data(std::string(6, '\0'));
  b.node("Mul", {"x", "w"}, {"y"});
  expect_model_error([&] { b.load(); }, {"initializer 'w'", "FLOAT16"});
}

TEST(Import, InitializerCountMismatchIsRejected) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.initializer("w", {3}, {1, 2});  // 2 values for 3 elements
  b.node("Mul", {"x", "w"}, {"y"});
  expect_model_error([&] { b.load(); }, {"initializer 'w'", "2 values", "need 3"});
}

TEST(Import, RawDataLengthMismatchIsRejected) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(3);
  t->set_raw_data(std::string(11, '\0'));
  b.node("Mul", {"x", "w"}, {"y"});
  expect_model_error([&] { b.load(); }, {"initializer 'w'", "raw_data has 11 bytes", "need 12"});
}

TEST(Import, HugeDimsWithTinyDataAreRejectedBeforeAllocating) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(std::int64_t{1} << 30);
  t->add_dims(std::int64_t{1} << 30);
  t->set_raw_data(std::string(4, '\0'));
  b.node("Mul", {"x", "w"}, {"y"});
  expect_model_error([&] { b.load(); }, {"initializer 'w'", "2^31"});
}

TEST(Import, ExternalDataIsRejected) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  auto* t = b.proto().mutable_graph()->add_initializer();
  t->set_name("w");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(3);
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  b.node("Mul", {"x", "w"}, {"y"});
  expect_model_error([&] { b.load(); }, {"initializer 'w'", "external file"});
}

TEST(Import, OpsetOutOfRangeIsRejected) {
  ModelBuilder b(18);
  b.input("x", {3}).output("y");
  b.node("Relu", {"x"}, {"y"});
  expect_model_error([&] { b.load(); }, {"opset 18", "supported opsets: 6 to 17"});
}

TEST(Import, SymbolicNonBatchDimIsRejected) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.proto().mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()
      ->mutable_shape()->mutable_dim(1)->set_dim_param("C");
  b.node("Relu", {"x"}, {"y"});
  expect_model_error([&] { b.load(); }, {"graph input 'x'", "dim 1", "symbolic ('C')", "batch"});
}

TEST(Import, UndefinedInputIsRejected) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.node("Add", {"x", "ghost"}, {"y"}, "sum");
  expect_model_error([&] { b.load(); }, {"node 'sum' (Add)", "input 'ghost'"});
}

TEST(Import, CycleIsRejected) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.node("Add", {"x", "b"}, {"a"});
  b.node("Relu", {"a"}, {"b"});
  b.node("Relu", {"a"}, {"y"});
  expect_model_error([&] { b.load(); }, {"cycle"});
}

TEST(Import, NodesAreSortedTopologically) {
  ModelBuilder b;
  b.input("x", {3}).output("y");
  b.node("Relu", {"h"}, {"y"}, "second");
  b.node("Relu", {"x"}, {"h"}, "first");
  const model::Graph g = b.load();
  ASSERT_EQ(g.nodes.size(), 2u);
  EXPECT_EQ(g.nodes[0].name, "first");
  EXPECT_EQ(g.nodes[1].name, "second");
}

TEST(Import, ConstantNodeBecomesConstantTensor) {
  ModelBuilder b;
  b.input("x", {2}).output("y");
  auto& c = b.node("Constant", {}, {"k"});
  auto* a = c.add_attribute();
  a->set_name("value_floats");
  a->set_type(onnx::AttributeProto::FLOATS);
  a->add_floats(2.0f);
  a->add_floats(-3.0f);
  b.node("Mul", {"x", "k"}, {"y"});
  const model::Graph g = b.load();
  ASSERT_EQ(g.nodes.size(), 1u);
  const model::Tensor& k = g.tensors[static_cast<std::size_t>(g.nodes[0].inputs[1])];
  EXPECT_TRUE(k.is_constant);
  EXPECT_EQ(k.data, (std::vector<double>{2.0, -3.0}));
}

TEST(Import, ConstantGraphOutputIsRejected) {
  ModelBuilder b;
  b.input("x", {2}).output("y");
  b.initializer("w", {2}, {1, 2});
  b.node("Relu", {"w"}, {"y"});
  expect_model_error([&] { b.load(); }, {"graph output 'y'", "constant"});
}

TEST(Import, UsedDropoutMaskIsRejected) {
  ModelBuilder b;
  b.input("x", {2}).output("y").output("mask");
  b.node("Dropout", {"x"}, {"y", "mask"}, "drop");
  expect_model_error([&] { b.load(); }, {"node 'drop' (Dropout)", "output 1 ('mask') is used"});
}

TEST(Import, UnusedOptionalOutputsAreDropped) {
  ModelBuilder b(11);
  b.input("x", {1, 4, 4}).output("y");
  auto& n = b.node("MaxPool", {"x"}, {"y", "indices"}, "mp");
  attr(n, "kernel_shape", std::vector<std::int64_t>{2, 2});
  const model::Graph g = b.load();
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].outputs.size(), 1u);
}

}  // namespace
}  // namespace heinfer
